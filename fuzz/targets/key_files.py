"""Key files of the configuration: the verifier's public keys a host
pins and the operators' policy signing keys (es256_keys.load_public_key
through results.TrustedKeys.load and policy.load_public_key), and the
verifier's and operators' private keys (es256_keys.load_private_key)."""

import os
import tempfile

from korora_nova.attestation import es256_keys
from korora_nova.attestation import policy
from korora_nova.attestation import results
from fuzz import common

_FOLDER = tempfile.mkdtemp(prefix='korora-fuzz-keys-')
_PATH = os.path.join(_FOLDER, 'key.pem')


def fuzz_one_input(data):
    fd = os.open(_PATH, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as stream:
        stream.write(data)
    common.answer(results.TrustedKeys.load, [_PATH])
    common.answer(policy.load_public_key, _PATH)
    common.answer(es256_keys.load_private_key, _PATH, 'signing key')
    common.answer(policy.load_signing_key, _PATH)
