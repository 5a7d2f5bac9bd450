#!/usr/bin/env python3
"""Evidence appraisals per second, beside the raw ECDSA-P256 check.

Run by hand (it is not a test)::

    python benchmarks/appraisal.py [--quotes N] [--rounds R] [--seconds S]

It starts a swtpm of its own (EK certificates from a throwaway local CA,
all in a temporary folder that is removed again, and the swtpm stopped,
even on Ctrl-C), creates an ECDSA-P256 attestation key, makes N real
quotes over the default PCR selection with distinct nonces, and builds a
reference policy from their PCR values. Then, in R rounds, it measures
for S seconds each:

raw
    cryptography's ECDSA-P256 verify of the same quote messages and
    signatures (signatures turned into DER beforehand): the floor that
    no appraisal can beat, since every appraisal makes this check.
appraisal
    korora_nova.attestation.appraisal.appraise_quote on the same quotes,
    with the AK's public key loaded once.

and the verifier's own path, on a host enrolled as korora-verifier
enrolls one (EK certificate chain, credential activation, the host row in
a real SQLite verifier database), whose last accepted clock was recorded
by record_verdict, under an operator-signed policy stored with
policy_create:

host
    korora_nova.verifier.attestation.appraise_host(host row, quote, ...,
    its signed policies): the AK loaded from the row's bytes each time
    (the verifier's key cache), the clock checked against the row's.
judge
    attestation.judge: the host's active policies read from the database
    and their signatures checked (the verifier's policy cache), then
    appraise_host.
attest
    what Attestor.attest does but the vTPM manager's RPC and the verdict's
    write: the host row read (db.host_get), then judge.

All alternate within every round, in an order that rotates from round
to round, so that a noisy neighbour on a shared machine hurts all alike;
the median rate of each is reported, with its ratio to raw. Goals, on
one core: appraise_quote at least 0.5 of raw, appraise_host at least
0.6. Everything runs in this one process and thread.

With --keylime PYTHON (a Python that can import keylime, in a virtualenv
of its own), benchmarks/keylime_check_quote.py also runs under it on the
same quotes, in tpm2-tools' format, and measures Keylime's
Tpm.check_quote beside its own raw verify: the ratio appraise_host /
check_quote is printed (goal: at least 1.5).

Exit status: 0 if the goals are met, 1 if one is missed, 2 if the set-up
failed.
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import cryptography
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import utils as ec_utils
from cryptography.hazmat.primitives import hashes

from cryptography.hazmat.primitives import serialization

import machine  # benchmarks/machine.py, beside this script
from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy as policy_module
from korora_nova import conf
from korora_nova.conf import korora as korora_conf
from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova import exception
from korora_nova.tpm import attestation_key
from korora_nova.tpm import connection as tpm_connection
from korora_nova.tpm import endorsement
from korora_nova.tpm import quote as tpm_quote
from korora_nova.tpm import swtpm
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment

CONF = conf.CONF

# The PCRs a quote covers by default: [korora] pcr_selection's default.
DEFAULT_SELECTION = next(opt.default for opt in korora_conf.attestation_opts
                         if opt.name == 'pcr_selection')
AK_ALGORITHM = 'ecdsa-p256-sha256'
AK_HANDLE = 0x81010020
NONCE_SIZE = 32
HOST = 'bench-host'
POLICY = 'benchmark'
EK_TYPES = ['EK-RSA2048', 'EK-ECC256']
GOAL = 0.5
HOST_GOAL = 0.6
KEYLIME_GOAL = 1.5
KEYLIME_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              'keylime_check_quote.py')
NAMES = ('raw', 'appraisal', 'host', 'judge', 'attest')
IMA_PCR = 10


def _arguments(argv):
    parser = argparse.ArgumentParser(
        description='Evidence appraisals per second on real quotes, beside '
                    'the raw ECDSA-P256 signature-check rate.')
    parser.add_argument('--quotes', type=int, default=200, metavar='N',
                        help='real quotes to make and cycle through '
                             '(default: %(default)s)')
    parser.add_argument('--rounds', type=int, default=5, metavar='R',
                        help='rounds, each measuring raw and appraisal '
                             '(default: %(default)s)')
    parser.add_argument('--seconds', type=float, default=2.0, metavar='S',
                        help='seconds each of the two measurements runs in '
                             'a round (default: %(default)s)')
    parser.add_argument('--cpu', type=int, default=None, metavar='C',
                        help='pin the process to this CPU (default: let the '
                             'kernel choose)')
    parser.add_argument('--keylime', default=None, metavar='PYTHON',
                        help='a Python that imports keylime: also measure '
                             'Keylime\'s Tpm.check_quote on the same quotes')
    args = parser.parse_args(argv)
    if args.quotes < 1 or args.rounds < 1 or args.seconds <= 0:
        parser.error('--quotes and --rounds must be at least 1, --seconds '
                     'above 0')
    return args


def _versions():
    try:
        from cryptography.hazmat.backends.openssl import backend
        openssl = backend.openssl_version_text()
    except Exception:   # only informative
        openssl = 'unknown'
    return [
        machine.python(),
        ('cryptography', '%s, %s' % (cryptography.__version__, openssl)),
        ('tpm2-pytss', machine.package_version('tpm2-pytss')),
        machine.cpu(),
    ]


class LocalManager:
    """The two calls enrollment makes of a host's vTPM manager, answered
    by the TPM directly (no RPC)."""

    def __init__(self, connection, ak):
        self.connection = connection
        self.ak = ak

    def get_identity(self, host):
        return (endorsement.read_endorsement(self.connection, EK_TYPES),
                self.ak.public)

    def activate_credential(self, host, credential_blob, encrypted_secret):
        return self.ak.activate_credential(EK_TYPES, credential_blob,
                                           encrypted_secret)


def configure(workdir):
    """A verifier's configuration: a SQLite database in workdir, a
    trusted operator key; returns the operator's private key."""
    CONF([], project='korora', default_config_files=[],
         default_config_dirs=[])
    CONF.set_override('connection', 'sqlite:///' + os.path.join(
        workdir, 'korora.sqlite'), group='korora_database')
    migration.db_sync()
    key = ec.generate_private_key(ec.SECP256R1())
    path = os.path.join(workdir, 'operator.pub.pem')
    with open(path, 'wb') as stream:
        stream.write(key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))
    CONF.set_override('policy_signing_keys', [path], group='korora')
    return key


def make_quotes(workdir, count, selection):
    """Real quotes from a fresh swtpm: (evidence list, nonces, AK public).

    The TPM's host is enrolled first, as korora-verifier enrolls one.
    The swtpm is stopped again before this returns or raises.
    """
    ca = swtpm.LocalCA(os.path.join(workdir, 'ca'))
    tpm = swtpm.SoftwareTPM(os.path.join(workdir, 'tpm'), ca)
    connection = None
    try:
        tpm.start()
        connection = tpm_connection.TPMConnection(tpm.tcti)
        # A booted host's PCRs hold measurements, not zeros.
        for index in sorted({i for _, i in selection}):
            tpm_quote.extend_pcr(connection, 'sha256', index,
                                 b'korora benchmark PCR %d' % index)
        ak = attestation_key.AttestationKey(connection, AK_ALGORITHM,
                                            AK_HANDLE)
        bundle = os.path.join(workdir, 'ek-ca.pem')
        ca.write_bundle(bundle)
        CONF.set_override('ek_ca_bundle', bundle, group='korora')
        enrollment.enroll(LocalManager(connection, ak), HOST, POLICY)
        public = ak.public
        quotes, nonces = [], []
        start = time.monotonic()
        for _ in range(count):
            nonce = secrets.token_bytes(NONCE_SIZE)
            quotes.append(tpm_quote.quote(connection, ak, selection, nonce))
            nonces.append(nonce)
        print('  %d quotes made in %.1f s'
              % (count, time.monotonic() - start))
        return quotes, nonces, public
    finally:
        if connection is not None:
            connection.close()
        if tpm.pid is None:
            # Interrupted between the swtpm's start and its pid's reading.
            tpm.pid = _read_pid(os.path.join(tpm.state_dir, 'swtpm.pid'))
        tpm.stop()


def _read_pid(path):
    try:
        with open(path) as stream:
            return int(stream.read().strip())
    except (OSError, ValueError):
        return None


def prepare(quotes, nonces, ak_public, operator_key):
    """What the measurements need, checked once outside the timing."""
    ak_key = appraisal.load_public_key(ak_public)
    if not isinstance(ak_key, ec.EllipticCurvePublicKey) or (
            ak_key.curve.name != 'secp256r1'):
        raise exception.EvidenceError('the AK is not an ECDSA-P256 key')
    reference = policy_module.from_values(POLICY, 1, quotes[0].pcr_values)
    db.policy_create(reference,
                     signature=policy_module.sign(reference, operator_key))
    host = db.host_get(HOST)
    policies, ignored = attestation.signed_policies(host)
    if [p.label for p in policies] != [reference.label] or ignored:
        raise exception.PolicyError('the benchmark policy is not signed')
    # The host's first verdict, recorded as the verifier records it: the
    # row now holds the clock later quotes must not be behind.
    first = attestation.appraise_host(host, quotes[0], nonces[0], policies)
    db.record_verdict(HOST, first, nonces[0], quotes[0],
                      first.attestation.clock_info)
    host = db.host_get(HOST)
    algorithm = ec.ECDSA(hashes.SHA256())
    raw, appraise = [], []
    previous = None
    for quote, nonce in zip(quotes, nonces):
        r, s = evidence.parse_signature(quote.signature).values
        der = ec_utils.encode_dss_signature(int.from_bytes(r, 'big'),
                                            int.from_bytes(s, 'big'))
        ak_key.verify(der, quote.message, algorithm)
        clock = evidence.parse_attestation(quote.message).clock_info
        # Each quote is judged against the clock of the one before it,
        # as the verifier keeps a host's last accepted clock.
        item = (quote, nonce, previous or clock)
        for result in (
                appraisal.appraise_quote(quote, ak_key, nonce, reference,
                                         item[2], HOST),
                attestation.appraise_host(host, quote, nonce, policies),
                attestation.judge(db.host_get(HOST), quote, nonce)):
            if not result.trusted:
                raise exception.EvidenceError(
                    'a benchmark quote is not trusted: %s'
                    % result.summary())
        raw.append((der, quote.message))
        appraise.append(item)
        previous = clock
    return {'ak_key': ak_key, 'reference': reference,
            'algorithm': algorithm, 'raw': raw, 'appraise': appraise,
            'host': host, 'policies': policies}


def measure_raw(ak_key, algorithm, items, seconds):
    """Raw ECDSA-P256 verifies per second over items for about seconds,
    and the CPU share of that time."""
    verify = ak_key.verify

    def one_pass():
        for der, message in items:
            verify(der, message, algorithm)

    passes, wall, cpu = machine.repeat(one_pass, seconds)
    return passes * len(items) / wall, cpu / wall


def measure_appraisal(ak_key, reference, items, seconds):
    """Full appraise_quote calls per second over items, and the CPU
    share of that time."""
    appraise = appraisal.appraise_quote

    def one_pass():
        for quote, nonce, previous in items:
            if not appraise(quote, ak_key, nonce, reference, previous,
                            HOST).trusted:
                raise exception.EvidenceError('an appraisal failed')

    passes, wall, cpu = machine.repeat(one_pass, seconds)
    return passes * len(items) / wall, cpu / wall


def measure_verifier(step, items, seconds):
    """step(quote, nonce) calls per second over items, and the CPU
    share of that time."""
    def one_pass():
        for quote, nonce, _ in items:
            if not step(quote, nonce).trusted:
                raise exception.EvidenceError('an appraisal failed')

    passes, wall, cpu = machine.repeat(one_pass, seconds)
    return passes * len(items) / wall, cpu / wall


def run_rounds(args, prepared):
    p = prepared
    host, policies = p['host'], p['policies']
    steps = {
        'host': lambda quote, nonce: attestation.appraise_host(
            host, quote, nonce, policies),
        'judge': lambda quote, nonce: attestation.judge(host, quote, nonce),
        'attest': lambda quote, nonce: attestation.judge(
            db.host_get(HOST), quote, nonce),
    }
    runs = {
        'raw': lambda s: measure_raw(p['ak_key'], p['algorithm'], p['raw'],
                                     s),
        'appraisal': lambda s: measure_appraisal(
            p['ak_key'], p['reference'], p['appraise'], s),
    }
    for name, step in steps.items():
        runs[name] = (lambda step: lambda s: measure_verifier(
            step, p['appraise'], s))(step)
    # Warm up caches and allocators; not counted.
    for run in runs.values():
        run(min(0.2, args.seconds))
    rates = {name: [] for name in NAMES}
    rates['cpu'] = []
    for number in range(args.rounds):
        shift = number % len(NAMES)
        order = NAMES[shift:] + NAMES[:shift]
        line = []
        for name in order:
            rate, cpu_share = runs[name](args.seconds)
            rates[name].append(rate)
            rates['cpu'].append(cpu_share)
            line.append('%s %.0f/s' % (name, rate))
        print('  round %d: %s   ratios %s'
              % (number + 1, ', '.join(line), ' '.join(
                  '%.3f' % (rates[name][-1] / rates['raw'][-1])
                  for name in NAMES[1:])), flush=True)
    return rates


# tpm2-tools' serialized PCR file (tpm2_quote -o), which
# pcr_values.from_tools_serialized reads: what Keylime's agent sends.
def tools_pcr_file(selection, values):
    banks = {}
    for bank, index in selection:
        banks.setdefault(bank, []).append(index)
    out = bytearray(struct.pack('<I', len(banks)))
    for bank, indexes in banks.items():
        mask = sum(1 << i for i in indexes).to_bytes(4, 'little')
        out += struct.pack('<HB4sx', pcr_values.BANK_IDS[bank], 3, mask)
    out += bytes(8 * (pcr_values.MAX_BANKS - len(banks)))
    digests = [values[bank][i] for bank in banks for i in banks[bank]]
    lists = [digests[n:n + 8] for n in range(0, len(digests), 8)]
    out += struct.pack('<I', len(lists))
    for chunk in lists:
        out += struct.pack('<I', len(chunk))
        for n in range(8):
            digest = chunk[n] if n < len(chunk) else b''
            out += struct.pack('<H64s', len(digest), digest)
    return bytes(out)


def keylime_quotes(path, prepared, ak_public):
    """The quotes in Keylime's form ('r' quote:signature:PCR file, base64
    each) with their nonces, the AK's TPM2B_PUBLIC and the policy's
    allowed values, written to path for keylime_check_quote.py."""
    b64 = (lambda data: base64.b64encode(data).decode('ascii'))
    quotes = []
    previous = None
    for quote, nonce, _ in prepared['appraise']:
        attested = evidence.parse_attestation(quote.message)
        # Keylime refuses a quote whose clock is not later than the last
        # one's (Kororā accepts the same millisecond): one per clock.
        if previous is not None and attested.clock_info.clock <= previous:
            continue
        previous = attested.clock_info.clock
        selection = attested.pcr_selection
        pcr_file = tools_pcr_file(selection, quote.pcr_values)
        if pcr_values.from_tools_serialized(pcr_file) != (
                list(selection), quote.pcr_values):
            raise exception.EvidenceError('PCR file does not read back')
        quotes.append({'quote': 'r%s:%s:%s' % (
            b64(quote.message), b64(quote.signature), b64(pcr_file)),
            'nonce': b64(nonce)})
    # Keylime judges PCR 10 only against an IMA list, which this quote
    # has not: the PCR stays quoted (its digest is checked), not judged.
    policy = {str(index): sorted(v.hex() for v in allowed)
              for (bank, index), allowed in prepared['reference'].allowed
              .items() if index != IMA_PCR}
    raw = [[b64(der), b64(message)] for der, message in prepared['raw']]
    with open(path, 'w') as stream:
        json.dump({'ak_tpm': b64(ak_public), 'quotes': quotes,
                   'tpm_policy': policy, 'raw': raw}, stream)


def run_keylime(args, workdir, prepared, ak_public):
    """Keylime's figures, measured under args.keylime, or None."""
    path = os.path.join(workdir, 'keylime-quotes.json')
    keylime_quotes(path, prepared, ak_public)
    command = [args.keylime, KEYLIME_SCRIPT, path, '--rounds',
               str(args.rounds), '--seconds', str(args.seconds)]
    if args.cpu is not None:
        command += ['--cpu', str(args.cpu)]
    print('Measuring Keylime (%s):' % ' '.join(command), flush=True)
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                              timeout=600 + 4 * args.rounds * args.seconds)
    except (OSError, subprocess.TimeoutExpired) as error:
        print('  Keylime not measured: %s' % error)
        return None
    lines = done.stdout.splitlines()
    for line in lines[:-1]:
        print('  ' + line)
    if done.returncode != 0 or not lines:
        print('  Keylime not measured: exit status %d' % done.returncode)
        return None
    return json.loads(lines[-1])


def report(rates, args, keylime=None):
    base = statistics.median(rates['raw'])
    medians = {name: statistics.median(rates[name]) for name in NAMES}
    ratios = {name: medians[name] / base for name in NAMES}
    paired = {name: statistics.median(
        a / b for a, b in zip(rates[name], rates['raw'])) for name in NAMES}
    labels = {
        'raw': 'raw ECDSA-P256 verify (cryptography)',
        'appraisal': 'appraise_quote, AK loaded once',
        'host': 'appraise_host (verifier, row\'s AK)',
        'judge': 'judge (+ signed policies from DB)',
        'attest': 'attest path (+ host row from DB)',
    }
    print()
    print('Medians of %d rounds of %.1f s each:' % (args.rounds,
                                                    args.seconds))
    for name in NAMES:
        print('  %-38s %8.0f/s %7.1f us  ratio %.3f (paired %.3f)'
              % (labels[name] + ':', medians[name], 1e6 / medians[name],
                 ratios[name], paired[name]))
    print('  appraisal beyond the signature check: %.1f us; appraise_host '
          'beyond appraise_quote: %.1f us; the database reads of the '
          'attest path: %.1f us'
          % (1e6 / medians['appraisal'] - 1e6 / base,
             1e6 / medians['host'] - 1e6 / medians['appraisal'],
             1e6 / medians['attest'] - 1e6 / medians['host']))
    print('  CPU share while timing: %.0f%% at least (under ~95%%: the '
          'machine was busy)' % (100 * min(rates['cpu'])))
    met = True
    for name, goal in (('appraisal', GOAL), ('host', HOST_GOAL)):
        ok = ratios[name] >= goal
        met = met and ok
        print('  goal: %s/raw >= %.2f on one core: %s'
              % (name, goal, 'PASS' if ok else 'MISS'))
    if keylime is not None:
        own = keylime['check_quote'] / keylime['raw']
        print('  Keylime %s Tpm.check_quote: %.0f/s, %.3f of its raw '
              'verify (%.0f/s, cryptography %s)'
              % (keylime['version'], keylime['check_quote'], own,
                 keylime['raw'], keylime['cryptography']))
        for name in ('appraisal', 'host', 'attest'):
            print('  %s / check_quote: %.2f by rates, %.2f by ratios to '
                  'raw' % (name, medians[name] / keylime['check_quote'],
                           ratios[name] / own))
        ok = ratios['host'] / own >= KEYLIME_GOAL
        met = met and ok
        print('  goal: appraise_host >= %.1f x Keylime check_quote (ratios '
              'to raw): %s' % (KEYLIME_GOAL, 'PASS' if ok else 'MISS'))
    return 0 if met else 1


def main(argv=None):
    args = _arguments(argv)
    machine.stop_on_signals()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    selection = pcr_values.parse_selection(DEFAULT_SELECTION)
    print('korora-nova appraisal benchmark')
    for name, value in _versions():
        print('  %-13s %s' % (name + ':', value))
    pinned = sorted(os.sched_getaffinity(0)) if hasattr(
        os, 'sched_getaffinity') else []
    print('  %-13s one process, one thread; CPUs allowed: %s'
          % ('run:', ','.join(map(str, pinned)) or 'unknown'))
    print('  %-13s %s, AK %s, %d quotes with distinct %d-byte nonces'
          % ('evidence:', DEFAULT_SELECTION, AK_ALGORITHM,
             args.quotes, NONCE_SIZE))
    workdir = tempfile.mkdtemp(prefix='korora-bench-')
    try:
        try:
            operator_key = configure(workdir)
            print('Starting swtpm, enrolling its host and making quotes...')
            quotes, nonces, public = make_quotes(workdir, args.quotes,
                                                 selection)
            prepared = prepare(quotes, nonces, public, operator_key)
        except (exception.KororaError, OSError) as error:
            print('set-up failed: %s' % error, file=sys.stderr)
            return 2
        digest = hashlib.sha256(
            b''.join(q.message for q in quotes)).hexdigest()[:16]
        print('  all %d trusted by appraise_quote, appraise_host and judge '
              '(messages %s...)' % (len(quotes), digest))
        print('Measuring (the order rotates from round to round):')
        rates = run_rounds(args, prepared)
        keylime = None
        if args.keylime:
            keylime = run_keylime(args, workdir, prepared, public)
        return report(rates, args, keylime)
    except KeyboardInterrupt:
        print('\ninterrupted; swtpm stopped, %s removed' % workdir,
              file=sys.stderr)
        return 130
    finally:
        db.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
