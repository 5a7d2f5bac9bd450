"""The AK: created once, kept at its persistent handle, reloaded after."""

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from korora_nova.attestation import appraisal
from korora_nova import exception
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import attestation_key
from korora_nova.tpm import connection


class TestAttestationKey(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host = self.useFixture(services.SoftwareTPMFixture())

    def test_created_once_and_reloaded_by_a_new_process(self):
        first = self.host.attestation_key().public
        self.host.connection.close()
        self.host.tpm.stop()        # a reboot of the host
        self.host.tpm.start()
        other = connection.TPMConnection(self.host.tpm.tcti)
        self.addCleanup(other.close)
        again = attestation_key.AttestationKey(
            other, 'ecdsa-p256-sha256', services.AK_HANDLE).public
        self.assertEqual(first, again)

    def test_each_algorithm_gives_its_key_type(self):
        kinds = {}
        for n, algorithm in enumerate(('ecdsa-p256-sha256',
                                       'rsassa-2048-sha256',
                                       'rsapss-2048-sha256')):
            ak = self.host.attestation_key(algorithm,
                                           services.AK_HANDLE + n)
            kinds[algorithm] = appraisal.load_public_key(ak.public)
        self.assertIsInstance(kinds['ecdsa-p256-sha256'],
                              ec.EllipticCurvePublicKey)
        self.assertEqual('secp256r1', kinds['ecdsa-p256-sha256'].curve.name)
        for algorithm in ('rsassa-2048-sha256', 'rsapss-2048-sha256'):
            self.assertIsInstance(kinds[algorithm], rsa.RSAPublicKey)
            self.assertEqual(2048, kinds[algorithm].key_size)

    def test_a_foreign_key_at_the_handle_is_refused(self):
        self.host.attestation_key('ecdsa-p256-sha256').public
        rsa = self.host.attestation_key('rsassa-2048-sha256')
        error = self.assertRaises(exception.TPMError, lambda: rsa.public)
        self.assertIn('0x81010020 holds a key that is not a '
                      'rsassa-2048-sha256 attestation key', str(error))
        self.assertIn('ak_persistent_handle', str(error))

    def test_unknown_algorithm(self):
        error = self.assertRaises(exception.ConfigurationError,
                                  attestation_key.ak_template, 'dsa-1024')
        self.assertIn('ecdsa-p256-sha256', str(error))
