"""A signed verifier answer as a relying party checks it
(results.TrustedKeys.verify, for every kind of token), and the nonce
claim reader (results.nonce_bytes)."""

from korora_nova.attestation import results
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    token = common.text(data)
    nonce = bytes.fromhex(common.facts()['quote_nonce'])
    for kind in results.KINDS:
        claims = common.answer(keys.trusted().verify, token, kind,
                               subject='compute-1', nonce=nonce)
        if claims is not None:
            results.host_status(claims, 'compute-1')
    common.answer(results.nonce_bytes, token)
