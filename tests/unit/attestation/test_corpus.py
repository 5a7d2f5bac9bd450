"""A corpus of good and bad quotes, all made from real swtpm evidence.

Each bad piece of evidence must give an untrusted verdict with the reason
code a program matches on and a message that tells an operator what is
wrong; appraise_quote must answer every one of them with a verdict.
"""

import dataclasses
import random
import time

from cryptography.hazmat.primitives import serialization
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.types import TPM2B_PUBLIC
from tpm2_pytss.types import TPML_PCR_SELECTION
from tpm2_pytss.types import TPMT_SIG_SCHEME
from tpm2_pytss.types import TPMT_SIGNATURE

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import verdict
from korora_nova import exception
from tests import base
from korora_nova.demo import services
from tests.unit.attestation import shared
from korora_nova.tpm import attestation_key as attestation_key_module
from korora_nova.tpm import certify
from korora_nova.tpm import quote as tpm_quote

HOST = 'compute-1'
EC_PUBLIC_KEY_OID = bytes.fromhex('06072a8648ce3d0201')
PRIME256V1_OID = bytes.fromhex('06082a8648ce3d030107')
NULL_SCHEME = TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)


tearDownModule = shared.stop_software_tpms


def flip(data, position, mask=0x01):
    data = bytearray(data)
    data[position] ^= mask
    return bytes(data)


def with_values(quote, values):
    return dataclasses.replace(quote, pcr_values=values)


def copy_values(values):
    return {bank: dict(pcrs) for bank, pcrs in values.items()}


def relabelled(signature, sig_alg=None, hash_alg=None):
    """A real signature with its scheme or hash field rewritten."""
    parsed, _ = TPMT_SIGNATURE.unmarshal(signature)
    if sig_alg is not None:
        parsed.sigAlg = sig_alg
    if hash_alg is not None:
        parsed.signature.any.hashAlg = hash_alg
    return parsed.marshal()


class QuoteCorpusTest(shared.SharedTPMTestCase):
    """Evidence from two TPMs; the verifier enrolled the first one's AKs.
    """

    TPM_COUNT = 2

    @classmethod
    def setUpTPMs(cls):
        cls.tpm, cls.other_tpm = cls.tpms
        cls.aks = {algorithm: cls.attestation_key(cls.tpm, algorithm)
                   for algorithm in shared.AK_HANDLES}
        cls.ak, cls.ak_key = cls.aks[shared.ECDSA]
        cls.values = tpm_quote.read_pcrs(cls.tpm.connection,
                                         shared.SELECTION)
        cls.policy = policy_module.from_values('compute', 3, cls.values)

    def make_quote(self, algorithm=shared.ECDSA, selection=None):
        """A fresh quote by the enrolled TPM: (evidence, AK key, nonce)."""
        ak, key = self.aks[algorithm]
        quote_nonce = shared.nonce()
        quote = self.quote(self.tpm, ak, quote_nonce,
                           selection or shared.SELECTION)
        return quote, key, quote_nonce

    def judge(self, quote, quote_nonce, key=None, **kwargs):
        kwargs.setdefault('policy', self.policy)
        return self.appraise(quote, key or self.ak_key, quote_nonce,
                             host=HOST, **kwargs)

    # The good cases.

    def _assert_good(self, algorithm):
        quote, key, quote_nonce = self.make_quote(algorithm)
        result = self.judge(quote, quote_nonce, key)
        self.assertTrusted(result, host=HOST)
        self.assertEqual('%s: trusted under policy compute v3' % HOST,
                         result.summary())
        self.assertEqual('compute v3', result.policy)
        self.assertEqual(quote_nonce, result.attestation.extra_data)
        self.assertEqual(tuple(shared.SELECTION),
                         result.attestation.pcr_selection)
        self.assertEqual(self.values, result.pcr_values)
        report = result.to_json()
        self.assertTrue(report['trusted'])
        self.assertEqual([], report['reasons'])
        self.assertEqual(quote_nonce.hex(), report['quote']['nonce'])
        self.assertEqual(self.values['sha256'][10].hex(),
                         report['pcr_values']['sha256']['10'])

    def test_good_quote_ecdsa(self):
        self._assert_good(shared.ECDSA)

    def test_good_quote_rsassa(self):
        self._assert_good(shared.RSASSA)

    def test_good_quote_rsapss(self):
        self._assert_good(shared.RSAPSS)

    def test_good_quote_with_ak_as_pem_der_or_tpm2b_public(self):
        quote, key, quote_nonce = self.make_quote()
        ak_public = self.ak.public
        pem = key.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
        der = key.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
        for form in (pem, der, ak_public):
            loaded = appraisal.load_public_key(form)
            self.assertTrusted(self.judge(quote, quote_nonce, loaded),
                               host=HOST)

    def test_ak_public_key_that_is_not_one(self):
        for data in (b'', bytes(appraisal.MAX_PUBLIC_KEY_SIZE + 1),
                     'text', None):
            error = self.assertRaises(exception.EvidenceError,
                                      appraisal.load_public_key, data)
            self.assertIn('AK public key must be 1 to %d bytes'
                          % appraisal.MAX_PUBLIC_KEY_SIZE, str(error))
        der = self.ak_key.public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        for data in (b'junk', der[:-1], self.ak.public[:-1],
                     TPM2B_PUBLIC.parse('keyedhash').marshal()):
            error = self.assertRaises(exception.EvidenceError,
                                      appraisal.load_public_key, data)
            self.assertIn('neither a PEM or DER RSA/EC public key nor a '
                          'TPM2B_PUBLIC', str(error))

    def test_ak_public_key_of_an_unknown_algorithm(self):
        """An SPKI naming an algorithm or curve cryptography does not know.

        Fails until load_public_key handles it: load_der_public_key raises
        cryptography's UnsupportedAlgorithm, which it does not catch.
        """
        der = self.ak_key.public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        for oid in (EC_PUBLIC_KEY_OID, PRIME256V1_OID):
            self.assertEqual(1, der.count(oid))
            data = der.replace(oid, oid[:-1] + b'\x63')
            try:
                appraisal.load_public_key(data)
            except exception.EvidenceError as error:
                self.assertIn('AK public key', str(error))
            except Exception as error:
                self.fail('load_public_key let %s escape: %s'
                          % (type(error).__name__, error))
            else:
                self.fail('load_public_key accepted an unknown algorithm')

    def test_good_quote_after_an_earlier_one(self):
        first, _, _ = self.make_quote()
        time.sleep(0.01)
        quote, _, quote_nonce = self.make_quote()
        earlier = evidence.parse_attestation(first.message).clock_info
        result = self.judge(quote, quote_nonce, previous_clock=earlier)
        self.assertTrusted(result, host=HOST)

    def test_no_policy(self):
        quote, _, quote_nonce = self.make_quote()
        result = self.judge(quote, quote_nonce, policy=None)
        self.assertUntrusted(result, verdict.NO_POLICY,
                             'no reference policy', 'not appraised',
                             evidence_valid=True, host=HOST)
        self.assertEqual({verdict.NO_POLICY}, result.codes())
        self.assertIsNone(result.policy)
        # The evidence itself is genuine: its values are reported.
        self.assertEqual(self.values, result.pcr_values)

    def test_policy_needs_a_pcr_the_quote_does_not_cover(self):
        selection = [p for p in shared.SELECTION if p != ('sha256', 10)]
        quote, _, quote_nonce = self.make_quote(selection=selection)
        result = self.judge(quote, quote_nonce)
        self.assertUntrusted(result, verdict.PCR_POLICY, 'sha256:10',
                             'required by policy compute v3',
                             'does not cover', evidence_valid=True,
                             host=HOST)
        self.assertEqual({verdict.PCR_POLICY}, result.codes())

    # Signatures.

    def test_flipped_signature_bytes(self):
        for algorithm in shared.AK_HANDLES:
            quote, key, quote_nonce = self.make_quote(algorithm)
            for position in (-1, -20, len(quote.signature) // 2):
                bad = dataclasses.replace(
                    quote, signature=flip(quote.signature, position))
                result = self.judge(bad, quote_nonce, key)
                self.assertUntrusted(result, verdict.SIGNATURE,
                                     'does not verify with the enrolled AK',
                                     host=HOST)

    def test_signature_of_another_quote(self):
        quote, _, quote_nonce = self.make_quote()
        other, _, _ = self.make_quote()
        bad = dataclasses.replace(quote, signature=other.signature)
        self.assertUntrusted(self.judge(bad, quote_nonce),
                             verdict.SIGNATURE, 'does not verify',
                             host=HOST)

    def test_quote_by_another_tpms_ak(self):
        other_ak, _ = self.attestation_key(self.other_tpm)
        quote_nonce = shared.nonce()
        quote = self.quote(self.other_tpm, other_ak, quote_nonce)
        result = self.judge(quote, quote_nonce)
        self.assertUntrusted(result, verdict.SIGNATURE,
                             'does not verify with the enrolled AK',
                             host=HOST)
        self.assertIsNone(result.pcr_values)

    def test_rsa_signed_quote_against_an_ec_ak(self):
        quote, _, quote_nonce = self.make_quote(shared.RSASSA)
        result = self.judge(quote, quote_nonce, self.ak_key)
        self.assertUntrusted(result, verdict.SIGNATURE, 'RSASSA',
                             'the enrolled AK is a EC key', host=HOST)

    def test_ec_signed_quote_against_an_rsa_ak(self):
        quote, _, quote_nonce = self.make_quote(shared.ECDSA)
        result = self.judge(quote, quote_nonce, self.aks[shared.RSAPSS][1])
        self.assertUntrusted(result, verdict.SIGNATURE, 'ECDSA',
                             'the enrolled AK is a RSA key', host=HOST)

    def test_quote_by_another_rsa_ak_of_the_same_tpm(self):
        quote, _, quote_nonce = self.make_quote(shared.RSAPSS)
        result = self.judge(quote, quote_nonce, self.aks[shared.RSASSA][1])
        self.assertUntrusted(result, verdict.SIGNATURE, 'does not verify',
                             host=HOST)

    def test_rsassa_signature_relabelled_as_rsapss(self):
        quote, key, quote_nonce = self.make_quote(shared.RSASSA)
        bad = dataclasses.replace(quote, signature=relabelled(
            quote.signature, sig_alg=TPM2_ALG.RSAPSS))
        self.assertUntrusted(self.judge(bad, quote_nonce, key),
                             verdict.SIGNATURE, 'does not verify',
                             host=HOST)

    def test_signature_hash_relabelled_sha384(self):
        quote, key, quote_nonce = self.make_quote(shared.ECDSA)
        bad = dataclasses.replace(quote, signature=relabelled(
            quote.signature, hash_alg=TPM2_ALG.SHA384))
        self.assertUntrusted(self.judge(bad, quote_nonce, key),
                             verdict.SIGNATURE, 'does not verify',
                             host=HOST)

    # Unsupported algorithms.

    def test_hmac_signature(self):
        quote, _, quote_nonce = self.make_quote()
        signature = TPMT_SIGNATURE(sigAlg=TPM2_ALG.HMAC)
        signature.signature.hmac.hashAlg = TPM2_ALG.SHA256
        signature.signature.hmac.digest.sha256 = quote.message[-32:]
        bad = dataclasses.replace(quote, signature=signature.marshal())
        result = self.judge(bad, quote_nonce)
        self.assertUntrusted(result, verdict.UNSUPPORTED,
                             'signature scheme 0x0005', 'not accepted',
                             host=HOST)

    def test_null_signature(self):
        quote, _, quote_nonce = self.make_quote()
        signature = TPMT_SIGNATURE(sigAlg=TPM2_ALG.NULL).marshal()
        result = self.judge(dataclasses.replace(quote, signature=signature),
                            quote_nonce)
        self.assertUntrusted(result, verdict.MALFORMED,
                             'signature of scheme NULL carries no signature',
                             host=HOST)

    def test_signature_relabelled_sha1(self):
        for algorithm in shared.AK_HANDLES:
            quote, key, quote_nonce = self.make_quote(algorithm)
            bad = dataclasses.replace(quote, signature=relabelled(
                quote.signature, hash_alg=TPM2_ALG.SHA1))
            self.assertUntrusted(self.judge(bad, quote_nonce, key),
                                 verdict.UNSUPPORTED, 'hash 0x0004',
                                 'SHA-256 or stronger', host=HOST)

    def test_genuine_sha1_quote(self):
        """An AK whose scheme is ECDSA with SHA-1, quoting for real."""
        template = TPM2B_PUBLIC.parse(
            'ecc256:ecdsa-sha1:null',
            objectAttributes=attestation_key_module.AK_ATTRIBUTES)
        quote_nonce = shared.nonce()
        with self.tpm.connection.esapi() as ectx:
            handle, public, _, _, _ = ectx.create_primary(
                None, template, ESYS_TR.ENDORSEMENT)
            try:
                attested, signature = ectx.quote(
                    handle, pcr_values.to_tpml(shared.SELECTION),
                    quote_nonce, NULL_SCHEME)
            finally:
                ectx.flush_context(handle)
        key = appraisal.load_public_key(public.marshal())
        quote = evidence.QuoteEvidence(bytes(attested), signature.marshal(),
                                       self.values)
        result = self.judge(quote, quote_nonce, key)
        self.assertUntrusted(result, verdict.UNSUPPORTED,
                             'scheme 0x0018 with hash 0x0004',
                             'not accepted', host=HOST)

    # Freshness.

    def test_wrong_nonce(self):
        quote, _, quote_nonce = self.make_quote()
        expected = shared.nonce()
        result = self.judge(quote, expected)
        self.assertUntrusted(result, verdict.NONCE, 'nonce mismatch',
                             expected.hex(), quote_nonce.hex(), host=HOST)
        self.assertEqual({verdict.NONCE}, result.codes())

    def test_replayed_quote(self):
        old, _, old_nonce = self.make_quote()
        self.assertTrusted(self.judge(old, old_nonce), host=HOST)
        # The verifier asks again; the host sends the old quote.
        result = self.judge(old, shared.nonce())
        self.assertUntrusted(result, verdict.NONCE, 'stale or replayed',
                             old_nonce.hex(), host=HOST)

    def test_clock_went_backwards(self):
        old, _, old_nonce = self.make_quote()
        time.sleep(0.01)
        newer, _, _ = self.make_quote()
        old_clock = evidence.parse_attestation(old.message).clock_info
        seen = evidence.parse_attestation(newer.message).clock_info
        self.assertGreater(seen.clock, old_clock.clock)
        result = self.judge(old, old_nonce, previous_clock=seen)
        self.assertUntrusted(result, verdict.CLOCK,
                             'TPM clock went backwards',
                             'clock %d -> %d ms' % (seen.clock,
                                                    old_clock.clock),
                             host=HOST)
        self.assertEqual({verdict.CLOCK}, result.codes())

    def test_reset_count_went_backwards(self):
        quote, _, quote_nonce = self.make_quote()
        now = evidence.parse_attestation(quote.message).clock_info
        seen = dataclasses.replace(now, reset_count=now.reset_count + 1,
                                   clock=0)
        result = self.judge(quote, quote_nonce, previous_clock=seen)
        self.assertUntrusted(result, verdict.CLOCK,
                             'reset count %d -> %d' % (now.reset_count + 1,
                                                       now.reset_count),
                             'rolled-back TPM', host=HOST)

    # PCR values.

    def test_pcr_value_changed_after_quoting(self):
        quote, _, quote_nonce = self.make_quote()
        values = copy_values(quote.pcr_values)
        values['sha256'][10] = b'\xff' * 32
        result = self.judge(with_values(quote, values), quote_nonce)
        self.assertUntrusted(result, verdict.PCR_DIGEST,
                             'do not match the digest the TPM quoted',
                             host=HOST)
        # Values that are not what the TPM signed are neither judged by
        # the policy nor reported as the host's.
        self.assertEqual({verdict.PCR_DIGEST}, result.codes())
        self.assertIsNone(result.pcr_values)

    def test_pcr_values_reordered(self):
        quote, _, quote_nonce = self.make_quote()
        values = copy_values(quote.pcr_values)
        values['sha256'][0], values['sha256'][1] = (values['sha256'][1],
                                                    values['sha256'][0])
        if values == quote.pcr_values:
            values['sha256'][0] = flip(values['sha256'][0], 0)
        self.assertUntrusted(self.judge(with_values(quote, values),
                                        quote_nonce),
                             verdict.PCR_DIGEST, 'do not match', host=HOST)

    def test_pcr_value_missing(self):
        quote, _, quote_nonce = self.make_quote()
        values = copy_values(quote.pcr_values)
        del values['sha256'][7]
        result = self.judge(with_values(quote, values), quote_nonce)
        self.assertUntrusted(result, verdict.PCR_DIGEST,
                             'PCR values missing for sha256:7',
                             'which the quote covers', host=HOST)

    def test_empty_pcr_values(self):
        quote, _, quote_nonce = self.make_quote()
        for values in ({}, {'sha256': {}}, None):
            result = self.judge(with_values(quote, values), quote_nonce)
            self.assertUntrusted(
                result, verdict.PCR_DIGEST,
                'missing for sha256:0, sha256:1, sha256:2, sha256:3, '
                'sha256:7, sha256:10', host=HOST)

    def test_pcr_values_of_another_bank(self):
        quote, _, quote_nonce = self.make_quote()
        values = {'sha1': {i: bytes(20) for _, i in shared.SELECTION}}
        self.assertUntrusted(self.judge(with_values(quote, values),
                                        quote_nonce),
                             verdict.PCR_DIGEST, 'missing for sha256:0',
                             host=HOST)

    def test_pcr_values_the_quote_does_not_cover(self):
        """Values of PCRs outside the quote are not the TPM's word.

        Fails until appraise_quote handles them: it reports such values in
        Verdict.pcr_values (and to_json) as genuine, with evidence_valid
        True, and verifier.attestation.record_policy then builds a policy
        from them.
        """
        quote, _, quote_nonce = self.make_quote()
        values = copy_values(quote.pcr_values)
        values['sha256'][4] = b'\x42' * 32
        result = self.judge(with_values(quote, values), quote_nonce)
        reported = (result.to_json()['pcr_values'] or {}).get('sha256', {})
        self.assertNotIn('4', reported, result.summary())
        if not result.trusted:
            # Refusing the evidence is right too, if it says why.
            self.assertUntrusted(result, verdict.MALFORMED, 'sha256:4',
                                 host=HOST)

    def test_pcr_value_of_wrong_length(self):
        quote, _, quote_nonce = self.make_quote()
        values = copy_values(quote.pcr_values)
        values['sha256'][3] = values['sha256'][3][:31]
        result = self.judge(with_values(quote, values), quote_nonce)
        self.assertUntrusted(result, verdict.MALFORMED,
                             'PCR sha256:3 value is 31 bytes, not 32',
                             host=HOST)

    def test_quote_of_no_pcr(self):
        quote_nonce = shared.nonce()
        with self.tpm.connection.esapi() as ectx:
            attested, signature = ectx.quote(
                self.ak.handle(ectx), TPML_PCR_SELECTION(), quote_nonce,
                NULL_SCHEME)
        quote = evidence.QuoteEvidence(bytes(attested), signature.marshal(),
                                       {})
        result = self.judge(quote, quote_nonce)
        self.assertUntrusted(result, verdict.MALFORMED,
                             'the quote covers no PCR', host=HOST)

    # Malformed blobs.

    def test_truncated_message(self):
        quote, _, quote_nonce = self.make_quote()
        for length in (1, 4, 10, len(quote.message) // 2,
                       len(quote.message) - 1):
            bad = dataclasses.replace(quote, message=quote.message[:length])
            result = self.judge(bad, quote_nonce)
            self.assertUntrusted(result, verdict.MALFORMED,
                                 'attestation message is not a valid '
                                 'TPMS_ATTEST', host=HOST)
            self.assertIsNone(result.attestation)

    def test_truncated_signature(self):
        for algorithm in shared.AK_HANDLES:
            quote, key, quote_nonce = self.make_quote(algorithm)
            for length in (1, 2, 4, len(quote.signature) - 1):
                bad = dataclasses.replace(
                    quote, signature=quote.signature[:length])
                self.assertUntrusted(self.judge(bad, quote_nonce, key),
                                     verdict.MALFORMED,
                                     'signature is not a valid '
                                     'TPMT_SIGNATURE', host=HOST)

    def test_random_bytes(self):
        quote, _, quote_nonce = self.make_quote()
        rng = random.Random(20261101)
        for length in (1, 16, len(quote.message), 600):
            garbage = bytes(rng.randrange(256) for _ in range(length))
            self.assertUntrusted(
                self.judge(dataclasses.replace(quote, message=garbage),
                           quote_nonce),
                verdict.MALFORMED, 'attestation message', host=HOST)
            self.assertUntrusted(
                self.judge(dataclasses.replace(quote, signature=garbage),
                           quote_nonce),
                verdict.MALFORMED, 'signature', host=HOST)

    def test_oversized_message(self):
        quote, _, quote_nonce = self.make_quote()
        size = evidence.MAX_ATTEST_SIZE + 1
        bad = dataclasses.replace(
            quote, message=quote.message.ljust(size, b'\0'))
        self.assertUntrusted(self.judge(bad, quote_nonce), verdict.MALFORMED,
                             'attestation message is %d bytes' % size,
                             'at most %d' % evidence.MAX_ATTEST_SIZE,
                             host=HOST)

    def test_oversized_signature(self):
        quote, _, quote_nonce = self.make_quote(shared.RSASSA)
        size = evidence.MAX_SIGNATURE_SIZE + 1
        bad = dataclasses.replace(
            quote, signature=quote.signature.ljust(size, b'\0'))
        self.assertUntrusted(
            self.judge(bad, quote_nonce, self.aks[shared.RSASSA][1]),
            verdict.MALFORMED, 'signature is %d bytes' % size,
            'at most %d' % evidence.MAX_SIGNATURE_SIZE, host=HOST)

    def test_message_padded_to_the_size_limit(self):
        quote, _, quote_nonce = self.make_quote()
        padding = evidence.MAX_ATTEST_SIZE - len(quote.message)
        bad = dataclasses.replace(quote, message=quote.message.ljust(
            evidence.MAX_ATTEST_SIZE, b'\0'))
        result = self.judge(bad, quote_nonce)
        self.assertUntrusted(result, verdict.MALFORMED,
                             'has %d bytes after its TPMS_ATTEST' % padding,
                             host=HOST)
        self.assertNotIn('at most', result.summary())

    def test_trailing_bytes(self):
        quote, _, quote_nonce = self.make_quote()
        self.assertUntrusted(
            self.judge(dataclasses.replace(quote,
                                           message=quote.message + b'\0'),
                       quote_nonce),
            verdict.MALFORMED,
            'attestation message has 1 bytes after its TPMS_ATTEST',
            host=HOST)
        self.assertUntrusted(
            self.judge(dataclasses.replace(
                quote, signature=quote.signature + b'\0\0'), quote_nonce),
            verdict.MALFORMED, 'signature has 2 bytes after its '
            'TPMT_SIGNATURE', host=HOST)

    def test_empty_blobs(self):
        quote, _, quote_nonce = self.make_quote()
        self.assertUntrusted(
            self.judge(dataclasses.replace(quote, message=b''), quote_nonce),
            verdict.MALFORMED, 'attestation message is empty', host=HOST)
        self.assertUntrusted(
            self.judge(dataclasses.replace(quote, signature=b''),
                       quote_nonce),
            verdict.MALFORMED, 'signature is empty', host=HOST)

    def test_blobs_that_are_not_bytes(self):
        quote, _, quote_nonce = self.make_quote()
        for value in (None, quote.message.hex(), 42, [1, 2]):
            self.assertUntrusted(
                self.judge(dataclasses.replace(quote, message=value),
                           quote_nonce),
                verdict.MALFORMED, 'attestation message is not a byte '
                'string', host=HOST)
            self.assertUntrusted(
                self.judge(dataclasses.replace(quote, signature=value),
                           quote_nonce),
                verdict.MALFORMED, 'signature is not a byte string',
                host=HOST)

    def test_message_not_from_a_tpm(self):
        quote, _, quote_nonce = self.make_quote()
        bad = dataclasses.replace(quote, message=flip(quote.message, 0))
        self.assertUntrusted(self.judge(bad, quote_nonce), verdict.MALFORMED,
                             'does not come from a TPM', 'magic 0xfe544347',
                             host=HOST)

    # Other kinds of TPM evidence.

    def test_certification_presented_as_quote(self):
        quote_nonce = shared.nonce()
        certified = certify.create_certified_storage_key(
            self.tpm.connection, self.ak, quote_nonce)
        bad = evidence.QuoteEvidence(certified.attestation,
                                     certified.signature, self.values)
        result = self.judge(bad, quote_nonce)
        self.assertUntrusted(result, verdict.WRONG_TYPE,
                             'evidence is a certify, not a quote',
                             host=HOST)
        # Genuine, fresh and signed by the AK: only its type is wrong.
        self.assertEqual({verdict.WRONG_TYPE}, result.codes())
        self.assertIsNone(result.pcr_values)

    def test_time_attestation_presented_as_quote(self):
        quote_nonce = shared.nonce()
        with self.tpm.connection.esapi() as ectx:
            attested, signature = ectx.get_time(self.ak.handle(ectx),
                                                quote_nonce)
        bad = evidence.QuoteEvidence(bytes(attested), signature.marshal(),
                                     self.values)
        result = self.judge(bad, quote_nonce)
        self.assertUntrusted(result, verdict.MALFORMED,
                             'is of type 0x8019',
                             'neither a quote nor a certification',
                             host=HOST)

    # Everything wrong at once.

    def test_every_failure_is_reported(self):
        quote, _, quote_nonce = self.make_quote()
        clock = evidence.parse_attestation(quote.message).clock_info
        values = copy_values(quote.pcr_values)
        values['sha256'][0] = b'\xff' * 32
        result = self.judge(
            with_values(quote, values), shared.nonce(),
            previous_clock=dataclasses.replace(clock,
                                               clock=clock.clock + 1000))
        self.assertEqual({verdict.NONCE, verdict.CLOCK, verdict.PCR_DIGEST},
                         result.codes())
        self.assertFalse(result.trusted)
        self.assertFalse(result.evidence_valid)
        summary = result.summary()
        for words in ('nonce mismatch', 'clock went backwards',
                      'do not match the digest'):
            self.assertIn(words, summary)


class PCRChangeTest(base.TestCase):
    """A host whose measurements changed after its policy was made."""

    def test_pcr_extended_after_enrollment(self):
        tpm = self.useFixture(services.SoftwareTPMFixture())
        ak = tpm.attestation_key()
        key = appraisal.load_public_key(ak.public)
        before = tpm_quote.read_pcrs(tpm.connection, shared.SELECTION)
        policy = policy_module.from_values('compute', 3, before)

        tpm_quote.extend_pcr(tpm.connection, 'sha256', 10,
                             b'an unexpected kernel module')
        quote_nonce = shared.nonce()
        quote = tpm_quote.quote(tpm.connection, ak, shared.SELECTION,
                                quote_nonce)
        changed = quote.pcr_values['sha256'][10]
        self.assertNotEqual(before['sha256'][10], changed)
        result = appraisal.appraise_quote(quote, key, quote_nonce,
                                          policy, host=HOST)
        self.assertFalse(result.trusted)
        self.assertTrue(result.evidence_valid)
        self.assertEqual([verdict.PCR_POLICY],
                         [r.code for r in result.reasons])
        self.assertEqual(
            '%s: PCR sha256:10 = %s: not allowed by policy compute v3'
            % (HOST, changed.hex()), result.reasons[0].message)
        self.assertIn('sha256:10', result.summary())

        # The operator approves the new measurement in a new version.
        allowed = dict(policy.allowed)
        allowed[('sha256', 10)] = frozenset([before['sha256'][10], changed])
        updated = policy_module.ReferencePolicy('compute', 4, allowed)
        result = appraisal.appraise_quote(quote, key, quote_nonce,
                                          updated, host=HOST)
        self.assertTrue(result.trusted, result.summary())
        self.assertEqual('%s: trusted under policy compute v4' % HOST,
                         result.summary())
