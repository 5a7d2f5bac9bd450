"""TPM2B_PUBLIC: an AK, an EK, a certified or a receiving key
(evidence.parse_public, appraisal.load_public_key, enrollment.check_ak,
duplication.check_receiver_key and wrap)."""

from korora_nova.attestation import appraisal
from korora_nova.attestation import enrollment
from korora_nova.attestation import evidence
from korora_nova.tpm import duplication
from fuzz import common


def fuzz_one_input(data):
    common.answer(evidence.parse_public, data)
    common.answer(appraisal.load_public_key, data)
    common.answer(enrollment.check_ak, data)
    if common.answer(duplication.check_receiver_key, data) is not None:
        common.answer(duplication.wrap, data, b'k' * 32)
