"""An EK certificate a host presents (ek_certificate.load_certificate),
its chain to the swtpm CA (verify_chain, also as its own intermediate)
and its key (public_key_matches)."""

from korora_nova.attestation import ek_certificate
from fuzz import common
from fuzz import keys


def fuzz_one_input(data):
    certificate = common.answer(ek_certificate.load_certificate, data)
    if certificate is None:
        return
    common.answer(ek_certificate.verify_chain, certificate, keys.anchors())
    common.answer(ek_certificate.verify_chain, certificate, keys.anchors(),
                  [certificate])
    common.answer(ek_certificate.verify_chain, certificate, [certificate],
                  [certificate])
    common.answer(ek_certificate.public_key_matches, certificate, b'\x30')
