"""PCR values as they cross the message bus (pcr_values.from_json), and
a policy's judgement of them."""

from korora_nova.attestation import pcr_values
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    values = common.answer(pcr_values.from_json, common.json_value(data))
    if values is not None:
        pcr_values.to_json(values)
        selection = [(bank, index) for bank, pcrs in values.items()
                     for index in sorted(pcrs)]
        keys.seed_policy().appraise(selection, values)
