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
    with the AK's public key loaded once, as the verifier does.

The two alternate within every round, and which goes first swaps from
round to round, so that a noisy neighbour on a shared machine hurts both
alike; the median rate of each is reported, with the ratio
appraisal/raw. Goal: at least 0.5 on one core. Everything runs in
this one process and thread.

Exit status: 0 if the goal is met, 1 if it is missed, 2 if the set-up
failed.
"""

import argparse
import hashlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time

import cryptography
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import utils as ec_utils
from cryptography.hazmat.primitives import hashes

import machine  # benchmarks/machine.py, beside this script
from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy as policy_module
from korora_nova.conf import korora as korora_conf
from korora_nova import exception
from korora_nova.tpm import attestation_key
from korora_nova.tpm import connection as tpm_connection
from korora_nova.tpm import quote as tpm_quote
from korora_nova.tpm import swtpm

# The PCRs a quote covers by default: [korora] pcr_selection's default.
DEFAULT_SELECTION = next(opt.default for opt in korora_conf.attestation_opts
                         if opt.name == 'pcr_selection')
AK_ALGORITHM = 'ecdsa-p256-sha256'
AK_HANDLE = 0x81010020
NONCE_SIZE = 32
HOST = 'bench-host'
GOAL = 0.5


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


def make_quotes(workdir, count, selection):
    """Real quotes from a fresh swtpm: (evidence list, nonces, AK public).

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


def prepare(quotes, nonces, ak_public):
    """What both measurements need, checked once outside the timing."""
    ak_key = appraisal.load_public_key(ak_public)
    if not isinstance(ak_key, ec.EllipticCurvePublicKey) or (
            ak_key.curve.name != 'secp256r1'):
        raise exception.EvidenceError('the AK is not an ECDSA-P256 key')
    reference = policy_module.from_values('benchmark', 1,
                                          quotes[0].pcr_values)
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
        result = appraisal.appraise_quote(quote, ak_key, nonce, reference,
                                          item[2], HOST)
        if not result.trusted:
            raise exception.EvidenceError(
                'a benchmark quote is not trusted: %s' % result.summary())
        raw.append((der, quote.message))
        appraise.append(item)
        previous = clock
    return ak_key, reference, algorithm, raw, appraise


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


def run_rounds(args, ak_key, reference, algorithm, raw, appraise):
    runs = {
        'raw': lambda s: measure_raw(ak_key, algorithm, raw, s),
        'appraisal': lambda s: measure_appraisal(ak_key, reference,
                                                 appraise, s),
    }
    # Warm up caches and allocators; not counted.
    for run in runs.values():
        run(min(0.2, args.seconds))
    rates = {'raw': [], 'appraisal': [], 'cpu': []}
    for number in range(args.rounds):
        order = ('raw', 'appraisal') if number % 2 == 0 else (
            'appraisal', 'raw')
        line = []
        for name in order:
            rate, cpu_share = runs[name](args.seconds)
            rates[name].append(rate)
            rates['cpu'].append(cpu_share)
            line.append('%-9s %6.0f/s' % (name, rate))
        print('  round %d: %s   ratio %.3f'
              % (number + 1, ', '.join(line),
                 rates['appraisal'][-1] / rates['raw'][-1]),
              flush=True)
    return rates


def report(rates, args):
    base = statistics.median(rates['raw'])
    full = statistics.median(rates['appraisal'])
    ratio = full / base
    paired = statistics.median(
        a / b for a, b in zip(rates['appraisal'], rates['raw']))
    print()
    print('Medians of %d rounds of %.1f s each:' % (args.rounds,
                                                    args.seconds))
    print('  raw ECDSA-P256 verify (cryptography): %9.0f/s  %7.1f us each'
          % (base, 1e6 / base))
    print('  appraise_quote (full appraisal):      %9.0f/s  %7.1f us each'
          % (full, 1e6 / full))
    print('  appraisal beyond the signature check:            %7.1f us each'
          % (1e6 / full - 1e6 / base))
    print('  ratio appraisal/raw: %.3f  (median of per-round ratios %.3f)'
          % (ratio, paired))
    print('  CPU share while timing: %.0f%% at least (under ~95%%: the '
          'machine was busy)' % (100 * min(rates['cpu'])))
    verdict = 'PASS' if ratio >= GOAL else 'MISS'
    print('  goal: ratio >= %.2f on one core: %s' % (GOAL, verdict))
    return 0 if ratio >= GOAL else 1


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
          % ('evidence:', ','.join(DEFAULT_SELECTION), AK_ALGORITHM,
             args.quotes, NONCE_SIZE))
    workdir = tempfile.mkdtemp(prefix='korora-bench-')
    try:
        try:
            print('Starting swtpm and making quotes...')
            quotes, nonces, public = make_quotes(workdir, args.quotes,
                                                 selection)
            prepared = prepare(quotes, nonces, public)
        except (exception.KororaError, OSError) as error:
            print('set-up failed: %s' % error, file=sys.stderr)
            return 2
        digest = hashlib.sha256(
            b''.join(q.message for q in quotes)).hexdigest()[:16]
        print('  all %d trusted by appraise_quote (messages %s...)'
              % (len(quotes), digest))
        print('Measuring (each round alternates which goes first):')
        rates = run_rounds(args, *prepared)
        return report(rates, args)
    except KeyboardInterrupt:
        print('\ninterrupted; swtpm stopped, %s removed' % workdir,
              file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
