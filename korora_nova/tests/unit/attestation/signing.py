"""Operator policy signing keys for tests: real EC P-256 keys in PEM
files, trusted through [korora] policy_signing_keys."""

import os

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization
import fixtures

from korora_nova.attestation import policy as policy_module


class OperatorKeyFixture(fixtures.Fixture):
    """A new operator key pair; trusted (added to [korora]
    policy_signing_keys) unless trusted=False.

    Attributes: key (private key), private_path, public_path, key_id.
    """

    def __init__(self, conf, trusted=True):
        super().__init__()
        self.conf = conf
        self.trusted = trusted

    def _setUp(self):
        folder = self.useFixture(fixtures.TempDir()).path
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.private_path = os.path.join(folder, 'operator-key.pem')
        self.public_path = os.path.join(folder, 'operator-key.pub.pem')
        with open(self.private_path, 'wb') as stream:
            stream.write(self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        with open(self.public_path, 'wb') as stream:
            stream.write(self.key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo))
        self.key_id = policy_module.key_id(self.key.public_key())
        if self.trusted:
            self.trust()

    def trust(self):
        keys = list(self.conf.korora.policy_signing_keys)
        if self.public_path not in keys:
            self.conf.set_override('policy_signing_keys',
                                   keys + [self.public_path], 'korora')
            self.addCleanup(self.conf.clear_override,
                            'policy_signing_keys', 'korora')

    def sign(self, reference):
        return policy_module.sign(reference, self.key)
