"""A quote as the verifier judges it (appraisal.appraise_quote): the
TPMS_ATTEST, the TPMT_SIGNATURE and the PCR values a host sent, judged
against a real swtpm AK and a policy of the seed's values.

Input: parts(data, 4): AK choice (first byte), message, signature, PCR
values as JSON ({bank: {index: hex}}, pcr_values.from_json).
"""

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    choice, message, signature, values = common.parts(data, 4)
    ak_keys = keys.ak_keys()
    ak = ak_keys[choice[0] % len(ak_keys)] if choice else ak_keys[0]
    values = common.answer(pcr_values.from_json, common.json_value(values))
    quote = evidence.QuoteEvidence(message, signature, values or {})
    nonce = bytes.fromhex(common.facts()['quote_nonce'])
    previous = evidence.ClockInfo(1, 0, 0, True) if (
        choice and choice[0] & 0x80) else None
    for policy in (keys.seed_policy(), None):
        verdict = appraisal.appraise_quote(quote, ak, nonce, policy,
                                           previous, host='compute-1')
        verdict.summary()
        verdict.to_json()
        for reason in verdict.reasons:
            common.check_message(reason.message)
