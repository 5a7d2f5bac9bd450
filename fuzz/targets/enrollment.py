"""What a host presents to enroll (enrollment.challenge): its EK
certificate, its EK public area and its AK public area, checked against
the swtpm CA.

Input: parts(data, 3): EK certificate (DER), EK TPM2B_PUBLIC, AK
TPM2B_PUBLIC.
"""

from korora_nova.attestation import enrollment
from korora_nova.attestation import evidence
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    certificate, ek_public, ak_public = common.parts(data, 3)
    endorsement = evidence.Endorsement('EK-RSA2048', certificate, ek_public)
    for trust_on_first_use in (False, True):
        common.answer(enrollment.challenge, 'compute-1', endorsement,
                      ak_public, keys.anchors(), trust_on_first_use)
