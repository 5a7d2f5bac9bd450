"""Base64 fields of every message (rpc.decode), as the vTPM manager
decodes the verifier's credential blob and secret, and the fields of a
sealed envelope it is asked to open."""

from korora_nova.attestation import evidence
from korora_nova import rpc
from korora_nova.tpm import duplication
from fuzz import common


def fuzz_one_input(data):
    value = common.json_value(data)
    for field in (value, common.text(data)):
        for limit in (64, evidence.MAX_PUBLIC_SIZE,
                      duplication.MAX_DUPLICATE_SIZE):
            common.answer(rpc.decode, field, 'field', limit)
