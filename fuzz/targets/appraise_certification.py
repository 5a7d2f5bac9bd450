"""A key certification as the verifier judges it
(appraisal.appraise_certification) against a real swtpm AK.

Input: parts(data, 3): the TPMS_ATTEST, the TPMT_SIGNATURE, the
certified key's TPM2B_PUBLIC.
"""

from korora_nova.attestation import appraisal
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    message, signature, public = common.parts(data, 3)
    nonce = bytes.fromhex(common.facts()['certify_nonce'])
    verdict = appraisal.appraise_certification(
        message, signature, keys.ak_keys()[0], nonce, public,
        host='compute-2')
    verdict.summary()
    verdict.to_json()
