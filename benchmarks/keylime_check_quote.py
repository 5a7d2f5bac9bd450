#!/usr/bin/env python3
"""Keylime's Tpm.check_quote per second, beside its own raw verify.

Not run by hand: benchmarks/appraisal.py --keylime PYTHON runs it under
a Python that imports keylime (a virtualenv of its own: Keylime pins
versions of its own), with the file of quotes it wrote::

    PYTHON benchmarks/keylime_check_quote.py QUOTES.json [--rounds R]
                                             [--seconds S] [--cpu C]

QUOTES.json holds the AK's TPM2B_PUBLIC, the quotes in the form Keylime's
agent sends ('r' then the TPMS_ATTEST, the TPMT_SIGNATURE and tpm2-tools'
serialized PCR file, base64, joined by ':'), their nonces, the allowed
PCR values as a Keylime tpm_policy, and the raw verify's inputs. Each
call is what Keylime's verifier makes for a quote without IMA or a
measured boot log: the AK rebuilt from its TPM2B_PUBLIC (Keylime keeps
no key), signature, nonce, the clock against the agent's last quote, the
PCRs against tpm_policy (PCR 10 is left out of it: Keylime judges it only
against an IMA list, and with none it reports one recoverable event,
pcr_validation.unused_pcr_10, which is expected here). The raw
ECDSA-P256 verify of cryptography (the version in Keylime's virtualenv)
alternates with it in every round.

Keylime imports the GPGME bindings (gpg) for IMA signature keyrings at
start; they are not on PyPI as a wheel, and check_quote is given no IMA
list, so an empty module stands in for them when they are missing.

It prints one line per round, then the medians as JSON on its last line.
"""

import argparse
import base64
import json
import logging
import os
import statistics
import sys
import time
import types

EXPECTED_EVENTS = ['pcr_validation.unused_pcr_10']


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('quotes')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--seconds', type=float, default=2.0)
    parser.add_argument('--cpu', type=int, default=None)
    return parser.parse_args(argv)


def _import_keylime():
    try:
        import gpg  # noqa: F401
    except ImportError:
        sys.modules['gpg'] = types.ModuleType('gpg')
    # Keylime logs every PCR it checks at INFO, warns about its missing
    # configuration files and logs the expected IMA event as an error:
    # keep the timing about the checks (an unexpected event still ends
    # the run, below).
    logging.disable(logging.ERROR)
    from keylime import agentstates
    from keylime.mba import mba
    from keylime.tpm import tpm_main
    # What Keylime's verifier loads at start (its measured-boot parser
    # and policies), without the custom policies of a configuration.
    mba.load_imports(skip_custom_policies=True)
    return agentstates, tpm_main


def repeat(one_pass, seconds):
    passes = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        one_pass()
        passes += 1
        wall = time.perf_counter() - start
        if wall >= seconds:
            return passes, wall, time.process_time() - cpu_start


def main(argv=None):
    args = _arguments(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with open(args.quotes) as stream:
        data = json.load(stream)
    agentstates, tpm_main = _import_keylime()
    import cryptography
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives import hashes
    from keylime.tpm import tpm2_objects

    tpm = tpm_main.Tpm()
    ak_tpm = base64.b64decode(data['ak_tpm'])
    policy = data['tpm_policy']
    quotes = [(q['quote'], base64.b64decode(q['nonce']))
              for q in data['quotes']]
    ak_key = tpm2_objects.pubkey_from_tpm2b_public(ak_tpm)
    raw = [(base64.b64decode(der), base64.b64decode(message))
           for der, message in data['raw']]
    algorithm = ec.ECDSA(hashes.SHA256())

    def check_all():
        # The agent's state, as Keylime's verifier keeps it: the clock of
        # the last quote it accepted (the quotes' clocks increase).
        state = agentstates.AgentAttestState('bench-host')
        for quote, nonce in quotes:
            failure = tpm.check_quote(state, nonce, None, quote, ak_tpm,
                                      policy)
            # Keylime flags the quoted IMA PCR (10) when no IMA list
            # comes with the quote, after every other check: that event
            # only is expected.
            if failure.get_event_ids() != EXPECTED_EVENTS:
                raise SystemExit('Keylime refused a benchmark quote: %s'
                                 % failure.get_event_ids())

    def verify_all():
        for der, message in raw:
            ak_key.verify(der, message, algorithm)

    check_all()
    runs = {'check_quote': check_all, 'raw': verify_all}
    rates = {name: [] for name in runs}
    for number in range(args.rounds):
        order = ('raw', 'check_quote') if number % 2 == 0 else (
            'check_quote', 'raw')
        line = []
        for name in order:
            passes, wall, _ = repeat(runs[name], args.seconds)
            count = len(quotes) if name == 'check_quote' else len(raw)
            rates[name].append(passes * count / wall)
            line.append('%s %.0f/s' % (name, rates[name][-1]))
        print('round %d: %s   ratio %.3f' % (
            number + 1, ', '.join(line),
            rates['check_quote'][-1] / rates['raw'][-1]), flush=True)
    try:
        from importlib import metadata
        version = metadata.version('keylime')
    except Exception:   # only informative
        version = 'unknown'
    print(json.dumps({
        'check_quote': statistics.median(rates['check_quote']),
        'raw': statistics.median(rates['raw']),
        'version': version, 'cryptography': cryptography.__version__}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
