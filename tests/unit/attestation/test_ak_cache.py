"""The verifier keeps AKs loaded by their bytes (appraisal.load_public_key).

Real AKs in real swtpm TPMs, real quotes: a key from the cache is the
key the TPM holds, another AK's bytes give another key, and bytes that
are no key are refused every time they are presented.
"""

from cryptography.hazmat.primitives import serialization

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import verdict as verdict_module
from korora_nova import exception
from tests.unit.attestation import shared


def tearDownModule():
    shared.stop_software_tpms()


def _der(key):
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


class TestAKCache(shared.SharedTPMTestCase):

    TPM_COUNT = 2

    @classmethod
    def setUpTPMs(cls):
        cls.ak_a = cls.tpms[0].attestation_key(
            shared.ECDSA, shared.AK_HANDLES[shared.ECDSA])
        cls.ak_b = cls.tpms[1].attestation_key(
            shared.ECDSA, shared.AK_HANDLES[shared.ECDSA])
        cls.rsa_a = cls.tpms[0].attestation_key(
            shared.RSASSA, shared.AK_HANDLES[shared.RSASSA])

    def assertValid(self, result):
        """Genuine evidence (no policy is given: PCRs not appraised)."""
        self.assertTrue(result.evidence_valid, result.summary())
        self.assertEqual({verdict_module.NO_POLICY}, result.codes())

    def test_a_cached_key_is_the_key_the_tpm_holds(self):
        key = appraisal.load_public_key(self.ak_a.public)
        # The same bytes again, from another buffer (a new database row
        # each time): the same key object.
        self.assertIs(key, appraisal.load_public_key(
            bytearray(self.ak_a.public)))
        # What tpm2-pytss makes of the TPM2B_PUBLIC, loaded uncached.
        expected = evidence.parse_public(self.ak_a.public).to_der()
        self.assertEqual(expected, _der(key))
        quote_nonce = shared.nonce()
        self.assertValid(self.appraise(
            self.quote(self.tpms[0], self.ak_a, quote_nonce), key,
            quote_nonce))

    def test_another_aks_bytes_give_another_key(self):
        key_a = appraisal.load_public_key(self.ak_a.public)
        key_b = appraisal.load_public_key(self.ak_b.public)
        self.assertNotEqual(_der(key_a), _der(key_b))
        quote_nonce = shared.nonce()
        quote = self.quote(self.tpms[1], self.ak_b, quote_nonce)
        self.assertValid(self.appraise(quote, key_b, quote_nonce))
        # B's quote judged against A's key: refused.
        self.assertUntrusted(self.appraise(quote, key_a, quote_nonce),
                             verdict_module.SIGNATURE, 'does not verify')
        rsa_key = appraisal.load_public_key(self.rsa_a.public)
        self.assertUntrusted(self.appraise(quote, rsa_key, quote_nonce),
                             verdict_module.SIGNATURE,
                             'the enrolled AK is a RSA key')

    def test_bytes_that_are_no_key_are_refused_each_time(self):
        good = appraisal.load_public_key(self.ak_a.public)
        # A's public area with its size prefix one byte short.
        broken = bytes(self.ak_a.public[:-1])
        for _ in range(2):
            error = self.assertRaises(exception.EvidenceError,
                                      appraisal.load_public_key, broken)
            self.assertEqual('AK public key is neither a PEM or DER RSA/EC '
                             'public key nor a TPM2B_PUBLIC', str(error))
        self.assertIs(good, appraisal.load_public_key(self.ak_a.public))
        for data in (b'', 'text', None):
            self.assertRaises(exception.EvidenceError,
                              appraisal.load_public_key, data)
