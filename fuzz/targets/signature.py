"""TPMT_SIGNATURE (evidence.parse_signature)."""

from korora_nova.attestation import evidence
from fuzz import common


def fuzz_one_input(data):
    common.answer(evidence.parse_signature, data)
