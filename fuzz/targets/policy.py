"""Reference policy files (policy.loads), and what is made of them."""

from korora_nova.attestation import policy
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    for document in (data, common.text(data)):
        reference = common.answer(policy.loads, document)
        if reference is not None:
            reference.label
            policy.canonical_payload(reference)
            reference.appraise(keys.selection(), keys.seed_values())
