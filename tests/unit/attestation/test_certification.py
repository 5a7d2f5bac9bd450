"""appraise_certification: is this key one the enrolled AK certified?

The certifications are real: TPM2_Certify of a fresh storage key by the
AK of a software TPM.
"""

import struct

from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPM2B_PUBLIC

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import verdict
from tests.unit.attestation import shared
from korora_nova.tpm import certify

HOST = 'compute-2'


tearDownModule = shared.stop_software_tpms


class CertificationTest(shared.SharedTPMTestCase):

    TPM_COUNT = 2

    @classmethod
    def setUpTPMs(cls):
        cls.tpm, cls.other_tpm = cls.tpms
        cls.ak, cls.ak_key = cls.attestation_key(cls.tpm)

    def certify(self, tpm=None, ak=None, algorithm=shared.ECDSA):
        tpm = tpm or self.tpm
        if ak is None:
            ak, _ = self.attestation_key(tpm, algorithm)
        certify_nonce = shared.nonce()
        return certify.create_certified_storage_key(
            tpm.connection, ak, certify_nonce), certify_nonce

    def judge(self, message, signature, certify_nonce, public, key=None):
        try:
            result = appraisal.appraise_certification(
                message, signature, key or self.ak_key, certify_nonce,
                public, host=HOST)
        except Exception as error:
            self.fail('appraise_certification let %s escape: %s; it must '
                      'return a verdict' % (type(error).__name__, error))
        self.assertIsInstance(result, verdict.Verdict)
        return result

    def test_good_certification(self):
        for algorithm in shared.AK_HANDLES:
            certified, certify_nonce = self.certify(algorithm=algorithm)
            _, key = self.attestation_key(self.tpm, algorithm)
            result = self.judge(certified.attestation, certified.signature,
                                certify_nonce, certified.public, key)
            self.assertTrusted(result, host=HOST)
            self.assertEqual('%s: trusted' % HOST, result.summary())
            self.assertEqual('certify', result.attestation.type)
            self.assertEqual(certify_nonce, result.attestation.extra_data)
            name = evidence.parse_public(certified.public).get_name()
            self.assertEqual(bytes(name), result.attestation.certified_name)

    def test_another_key_presented(self):
        certified, certify_nonce = self.certify()
        other, _ = self.certify()
        self.assertNotEqual(certified.public, other.public)
        result = self.judge(certified.attestation, certified.signature,
                            certify_nonce, other.public)
        self.assertUntrusted(result, verdict.CERTIFIED_KEY,
                             'not the key the AK certified', host=HOST)
        self.assertEqual({verdict.CERTIFIED_KEY}, result.codes())

    def test_another_key_with_the_same_template(self):
        """A key of the same kind, made outside the TPM, is not the
        certified one: only its public point differs."""
        certified, certify_nonce = self.certify()
        public, _ = TPM2B_PUBLIC.unmarshal(certified.public)
        x = bytearray(bytes(public.publicArea.unique.ecc.x))
        x[0] ^= 1
        public.publicArea.unique.ecc.x = bytes(x)
        result = self.judge(certified.attestation, certified.signature,
                            certify_nonce, public.marshal())
        self.assertUntrusted(result, verdict.CERTIFIED_KEY,
                             'not the key the AK certified', host=HOST)

    def test_wrong_nonce(self):
        certified, certify_nonce = self.certify()
        expected = shared.nonce()
        result = self.judge(certified.attestation, certified.signature,
                            expected, certified.public)
        self.assertUntrusted(result, verdict.NONCE, 'nonce mismatch',
                             expected.hex(), certify_nonce.hex(), host=HOST)
        self.assertEqual({verdict.NONCE}, result.codes())

    def test_signed_by_another_tpms_ak(self):
        certified, certify_nonce = self.certify(tpm=self.other_tpm)
        result = self.judge(certified.attestation, certified.signature,
                            certify_nonce, certified.public)
        self.assertUntrusted(result, verdict.SIGNATURE,
                             'does not verify with the enrolled AK',
                             host=HOST)

    def test_signature_of_another_certification(self):
        certified, certify_nonce = self.certify()
        other, _ = self.certify()
        result = self.judge(certified.attestation, other.signature,
                            certify_nonce, certified.public)
        self.assertUntrusted(result, verdict.SIGNATURE, 'does not verify',
                             host=HOST)

    def test_rsa_signed_certification_against_an_ec_ak(self):
        certified, certify_nonce = self.certify(algorithm=shared.RSASSA)
        result = self.judge(certified.attestation, certified.signature,
                            certify_nonce, certified.public)
        self.assertUntrusted(result, verdict.SIGNATURE, 'RSASSA',
                             'the enrolled AK is a EC key', host=HOST)

    def test_quote_presented_as_certification(self):
        quote_nonce = shared.nonce()
        quote = self.quote(self.tpm, self.ak, quote_nonce)
        certified, _ = self.certify()
        result = self.judge(quote.message, quote.signature, quote_nonce,
                            certified.public)
        self.assertUntrusted(result, verdict.WRONG_TYPE,
                             'evidence is a quote, not a key certification',
                             host=HOST)
        # A quote names no certified key either.
        self.assertUntrusted(result, verdict.CERTIFIED_KEY,
                             'not the key the AK certified', host=HOST)
        self.assertNotIn(verdict.SIGNATURE, result.codes())

    def test_malformed_attestation(self):
        certified, certify_nonce = self.certify()
        cases = (
            (certified.attestation[:-1], 'not a valid TPMS_ATTEST'),
            (certified.attestation + b'\0', '1 bytes after its TPMS_ATTEST'),
            (b'', 'attestation message is empty'),
            (bytes(evidence.MAX_ATTEST_SIZE + 1), 'at most'),
        )
        for message, words in cases:
            result = self.judge(message, certified.signature, certify_nonce,
                                certified.public)
            self.assertUntrusted(result, verdict.MALFORMED, words,
                                 host=HOST)
            self.assertIsNone(result.attestation)

    def test_malformed_signature(self):
        certified, certify_nonce = self.certify()
        for signature, words in (
                (certified.signature[:-3], 'not a valid TPMT_SIGNATURE'),
                (certified.signature + b'\0', 'after its TPMT_SIGNATURE'),
                (bytes(evidence.MAX_SIGNATURE_SIZE + 1), 'at most')):
            result = self.judge(certified.attestation, signature,
                                certify_nonce, certified.public)
            self.assertUntrusted(result, verdict.MALFORMED, 'signature',
                                 words, host=HOST)

    def test_malformed_public_key(self):
        certified, certify_nonce = self.certify()
        public = certified.public
        cases = (
            (public[:-1], 'certified key is not a valid TPM2B_PUBLIC'),
            (public[:2], 'certified key is not a valid TPM2B_PUBLIC'),
            (public + b'\0', 'certified key has 1 bytes after its '
                             'TPM2B_PUBLIC'),
            (b'', 'certified key is empty'),
            (public.hex(), 'certified key is not a byte string'),
            (bytes(evidence.MAX_PUBLIC_SIZE + 1), 'at most'),
        )
        for presented, words in cases:
            result = self.judge(certified.attestation, certified.signature,
                                certify_nonce, presented)
            self.assertUntrusted(result, verdict.MALFORMED, words,
                                 host=HOST)
            self.assertFalse(result.evidence_valid)

    def test_public_key_with_a_size_prefix_that_lies(self):
        """A TPM2B_PUBLIC whose size field is smaller than its content.

        Fails until evidence.parse_public checks the size field:
        libtss2-mu reads the whole TPMT_PUBLIC whatever the size says, so
        the structure seems to use up its buffer, and the key is taken
        (a TPM would answer TPM_RC_SIZE).
        """
        certified, certify_nonce = self.certify()
        (size,) = struct.unpack_from('>H', certified.public)
        self.assertEqual(len(certified.public) - 2, size)
        for lie in (size - 2, size - 16):
            presented = struct.pack('>H', lie) + certified.public[2:]
            result = self.judge(certified.attestation, certified.signature,
                                certify_nonce, presented)
            self.assertUntrusted(result, verdict.MALFORMED,
                                 'certified key', host=HOST)

    def test_public_key_with_unusable_name_algorithm(self):
        """A key whose name cannot be computed is not the certified key.

        Fails until appraise_certification handles it: get_name() raises
        ValueError for a TPM2B_PUBLIC whose nameAlg is NULL or unknown.
        """
        certified, certify_nonce = self.certify()
        for name_alg in (TPM2_ALG.NULL, 0x0777):
            public, _ = TPM2B_PUBLIC.unmarshal(certified.public)
            public.publicArea.nameAlg = name_alg
            result = self.judge(certified.attestation, certified.signature,
                                certify_nonce, public.marshal())
            self.assertFalse(result.trusted)
            self.assertFalse(result.evidence_valid)
            codes = result.codes() & {verdict.MALFORMED,
                                      verdict.CERTIFIED_KEY}
            self.assertTrue(codes, result.summary())
            self.assertIn('certified', result.summary())
