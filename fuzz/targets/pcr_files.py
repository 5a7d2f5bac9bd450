"""PCR values files and selections: tpm2_quote -o files
(pcr_values.from_tools_serialized), tpm2_pcrread -o files
(from_back_to_back) and selection text (parse_selection)."""

from korora_nova.attestation import pcr_values
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    common.answer(pcr_values.from_tools_serialized, data)
    common.answer(pcr_values.from_back_to_back, data, keys.selection())
    selection = common.answer(pcr_values.parse_selection, common.text(data))
    if selection:
        common.answer(pcr_values.to_tpml, selection)
