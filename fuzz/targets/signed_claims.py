"""Claims the verifier signed, as a vTPM manager's gate reads them
(vtpm_manager.authorization.Gate): challenges, enrollments and every
kind of authorization, and results.host_status of a result.

The claims are the fuzzer's JSON, signed here with the fuzz tree's
verifier key (SigningKey.sign), so the checks after the signature are
reached. Input: first byte picks the kind; the rest is the claims.
"""

from korora_nova.attestation import results
from korora_nova.vtpm_manager import authorization
from fuzz import common
from fuzz import keys

HOST = 'compute-1'


def fuzz_one_input(data):
    if not data:
        return
    claims = common.json_value(data[1:])
    if not isinstance(claims, dict):
        return
    kind = results.KINDS[data[0] % len(results.KINDS)]
    try:
        token = keys.verifier_signer().sign(kind, HOST, 60, claims)
    except (TypeError, ValueError, OverflowError):
        return          # the verifier never signs such claims
    gate = authorization.Gate(HOST, keys.trusted())
    common.answer(gate.challenge, token, 'attest')
    common.answer(gate.enrollment, token)
    for action in sorted(results.ROLES):
        answered = common.answer(gate.authorize, token, action)
        if answered is not None:
            common.answer(gate.nonce_of, answered, action)
    verified = common.answer(keys.trusted().verify, token, kind)
    if verified is not None:
        results.host_status(verified, HOST)
