"""TPMS_ATTEST of a quote or a certification (evidence.parse_attestation),
and its JSON form as the verifier records it."""

from korora_nova.attestation import evidence
from fuzz import common


def fuzz_one_input(data):
    parsed = common.answer(evidence.parse_attestation, data)
    if parsed is not None:
        parsed.to_json()
