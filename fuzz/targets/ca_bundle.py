"""An EK CA bundle file (ek_certificate.load_bundle), and the seed EK
certificate checked against its anchors."""

import os
import tempfile

from korora_nova.attestation import ek_certificate
from fuzz import common

_FOLDER = tempfile.mkdtemp(prefix='korora-fuzz-bundle-')
_PATH = os.path.join(_FOLDER, 'ek-ca-bundle.pem')


def fuzz_one_input(data):
    with open(_PATH, 'wb') as stream:
        stream.write(data)
    anchors = common.answer(ek_certificate.load_bundle, _PATH)
    if anchors:
        certificate = ek_certificate.load_certificate(
            common.material('ek-certificate.der'))
        common.answer(ek_certificate.verify_chain, certificate, anchors,
                      anchors)
