"""A stored policy version and its operator signature, as the verifier
checks them (policy.verified).

Input: first byte: bit 0 set means the document is signed here with the
operator key (so the checks after the signature are reached); then
parts(rest, 2): the compact JWS text, the stored policy document.
"""

import jwt

from korora_nova.attestation import policy
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    if not data:
        return
    signature, document = common.parts(data[1:], 2)
    signature, document = common.text(signature), common.text(document)
    if data[0] & 1:
        signature = jwt.api_jws.encode(
            document.encode('utf-8'), keys.policy_key(),
            algorithm=policy.ALGORITHM,
            headers={'kid': policy.key_id(keys.policy_key().public_key()),
                     'typ': policy.JWS_TYPE})
    for name, version in (('compute', 1), ('compute', 2)):
        common.answer(policy.verified, name, version, document, signature,
                      keys.policy_keys())
