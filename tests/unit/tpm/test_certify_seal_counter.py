"""Certified keys, sealing to PCRs and NV monotonic counters."""

from korora_nova.attestation import appraisal
from korora_nova import exception
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import certify
from korora_nova.tpm import nv_counter
from korora_nova.tpm import quote
from korora_nova.tpm import seal

SELECTION = [('sha256', 10), ('sha256', 11)]


class TestCertifySealCounter(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host = self.useFixture(services.SoftwareTPMFixture())

    def test_certified_key_is_fresh_and_verifies(self):
        ak = self.host.attestation_key()
        key = appraisal.load_public_key(ak.public)
        first = certify.create_certified_storage_key(
            self.host.connection, ak, b'migration-1')
        second = certify.create_certified_storage_key(
            self.host.connection, ak, b'migration-2')
        self.assertNotEqual(first.public, second.public)
        verdict = appraisal.appraise_certification(
            first.attestation, first.signature, key, b'migration-1',
            first.public, host='dest-1')
        self.assertTrue(verdict.trusted, verdict.summary())
        swapped = appraisal.appraise_certification(
            first.attestation, first.signature, key, b'migration-1',
            second.public, host='dest-1')
        self.assertFalse(swapped.trusted)
        self.assertEqual(
            'untrusted: dest-1: the key presented is not the key the AK '
            'certified', swapped.summary())

    def test_sealed_secret_opens_only_with_the_same_pcrs(self):
        blob = seal.seal(self.host.connection, b'vtpm-passphrase',
                         SELECTION)
        self.assertEqual(b'vtpm-passphrase',
                         seal.unseal(self.host.connection, blob))
        quote.extend_pcr(self.host.connection, 'sha256', 11, b'rootkit')
        error = self.assertRaises(exception.TPMError, seal.unseal,
                                  self.host.connection, blob)
        self.assertIn('PCRs sha256:10, sha256:11 no longer hold the values',
                      str(error))

    def test_seal_bounds_the_secret(self):
        for secret in (b'', b's' * 129):
            self.assertRaises(exception.TPMError, seal.seal,
                              self.host.connection, secret, SELECTION)

    def test_counter_only_goes_up_and_survives_restart(self):
        counter = nv_counter.MonotonicCounter(self.host.connection,
                                              0x01500010)
        start = counter.read()
        self.assertEqual(start + 1, counter.increment())
        self.assertEqual(start + 2, counter.increment())
        self.host.connection.close()
        self.host.tpm.stop()
        self.host.tpm.start()
        self.assertEqual(start + 2, counter.read())

    def test_counter_index_outside_the_owner_range(self):
        error = self.assertRaises(exception.ConfigurationError,
                                  nv_counter.MonotonicCounter,
                                  self.host.connection, 0x01C00002)
        self.assertIn('outside the owner range', str(error))
