"""Enrolling a host: EK certificate checks and credential activation.

The verifier side (korora_nova.attestation.enrollment) talks to real
software TPMs through the host side (AttestationKey.activate_credential).
Forged and expired certificates are made with cryptography by a CA of the
test's own.
"""

import dataclasses
import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC

from korora_nova.attestation import appraisal
from korora_nova.attestation import enrollment
from korora_nova.attestation import evidence
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import verdict
from korora_nova import exception
from korora_nova.demo import services
from tests.unit.attestation import shared
from korora_nova.tpm import attestation_key as attestation_key_module
from korora_nova.tpm import certify

HOST = 'compute-3'
DAY = datetime.timedelta(days=1)
_RSA_ENCRYPTION = bytes.fromhex('06092a864886f70d010101')


tearDownModule = shared.stop_software_tpms


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def public_key_of(tpm2b_public):
    """A marshalled TPM2B_PUBLIC as a cryptography public key."""
    return serialization.load_der_public_key(
        evidence.parse_public(tpm2b_public).to_der())


class FakeCA:
    """A CA the test controls, like an EK maker's (or a forger's)."""

    def __init__(self, subject='Forged TPM Manufacturer CA', issuer=None,
                 not_before=None, not_after=None, is_ca=True):
        if isinstance(subject, str):
            subject = x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.subject = subject
        issuer = issuer or self
        self.certificate = issuer.issue(
            subject, self.key.public_key(), not_before, not_after,
            is_ca=is_ca)

    def issue(self, subject, public_key, not_before=None, not_after=None,
              is_ca=False):
        if isinstance(subject, str):
            subject = x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, subject)]
                if subject else [])
        builder = x509.CertificateBuilder().subject_name(
            subject).issuer_name(self.subject).public_key(
            public_key).serial_number(x509.random_serial_number(
            )).not_valid_before(not_before or now() - DAY).not_valid_after(
            not_after or now() + 365 * DAY)
        if is_ca:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=True, path_length=None),
                critical=True)
        return builder.sign(self.key, hashes.SHA256())

    def ek_certificate(self, endorsement, **kwargs):
        """DER of an EK certificate for the TPM's EK public key."""
        certificate = self.issue('', public_key_of(endorsement.public),
                                 **kwargs)
        return certificate.public_bytes(serialization.Encoding.DER)


class EnrollmentTest(shared.SharedTPMTestCase):
    """Host A is enrolled; host B is another TPM of the same maker."""

    TPM_COUNT = 2

    @classmethod
    def setUpTPMs(cls):
        cls.tpm, cls.other_tpm = cls.tpms
        cls.endorsement = cls.tpm.endorsement()
        cls.other_endorsement = cls.other_tpm.endorsement()
        cls.ak, _ = cls.attestation_key(cls.tpm)
        cls.other_ak, _ = cls.attestation_key(cls.other_tpm)

    def enroll(self, endorsement=None, ak=None, anchors=None, **kwargs):
        """Challenge, activation in the TPM, finish: the whole exchange."""
        endorsement = endorsement or self.endorsement
        ak = ak or self.ak
        sent = enrollment.challenge(
            HOST, endorsement, ak.public,
            self.tpm.anchors if anchors is None else anchors, **kwargs)
        self.assertNotIn(repr(sent.secret), repr(sent))
        answer = ak.activate_credential(services.EK_TYPES,
                                        sent.credential_blob,
                                        sent.encrypted_secret)
        self.assertEqual(sent.secret, answer)
        return enrollment.finish(
            HOST, endorsement, ak.public, sent, answer,
            trust_on_first_use=kwargs.get('trust_on_first_use', False))

    def assertRefused(self, error_class, words, endorsement=None,
                      ak_public=None, anchors=None, **kwargs):
        error = self.assertRaises(
            error_class, enrollment.challenge, HOST,
            self.endorsement if endorsement is None else endorsement,
            self.ak.public if ak_public is None else ak_public,
            self.tpm.anchors if anchors is None else anchors, **kwargs)
        for word in (words if isinstance(words, tuple) else (words,)):
            self.assertIn(word, str(error))
        return error

    def test_good_enrollment(self):
        identity = self.enroll()
        self.assertEqual(HOST, identity.host)
        self.assertEqual(
            hashlib.sha256(self.endorsement.certificate).hexdigest(),
            identity.ek_certificate_sha256)
        self.assertEqual(self.endorsement.public, identity.ek_public)
        self.assertEqual(self.ak.public, identity.ak_public)
        self.assertEqual(
            bytes(evidence.parse_public(self.ak.public).get_name()).hex(),
            identity.ak_name)
        self.assertFalse(identity.trust_on_first_use)
        self.assertTrue(identity.ak_public_pem.startswith(
            b'-----BEGIN PUBLIC KEY-----'))

        # What the verifier kept checks the host's later quotes.
        key = appraisal.load_public_key(identity.ak_public_pem)
        quote_nonce = shared.nonce()
        quote = self.quote(self.tpm, self.ak, quote_nonce)
        policy = policy_module.from_values('compute', 1, quote.pcr_values)
        result = appraisal.appraise_quote(quote, key, quote_nonce, policy,
                                          host=identity.host)
        self.assertTrusted(result, host=HOST)
        # ... and not another TPM's.
        other = self.quote(self.other_tpm, self.other_ak, quote_nonce)
        result = appraisal.appraise_quote(other, key, quote_nonce, policy,
                                          host=identity.host)
        self.assertUntrusted(result, verdict.SIGNATURE, 'does not verify',
                             host=HOST)

    def test_good_enrollment_of_rsa_aks(self):
        for algorithm in (shared.RSASSA, shared.RSAPSS):
            ak, key = self.attestation_key(self.tpm, algorithm)
            identity = self.enroll(ak=ak)
            self.assertEqual(
                key.public_numbers(),
                appraisal.load_public_key(
                    identity.ak_public_pem).public_numbers())

    def test_chain_through_an_intermediate_the_host_presents(self):
        with open(self.tpm.ca.root_certificate, 'rb') as pem:
            root = x509.load_pem_x509_certificate(pem.read())
        with open(self.tpm.ca.issuer_certificate, 'rb') as pem:
            intermediate = x509.load_pem_x509_certificate(pem.read())
        self.assertRefused(exception.EndorsementError, 'does not chain',
                           anchors=[root])
        identity = self.enroll(anchors=[root],
                               intermediates=[intermediate])
        self.assertEqual(HOST, identity.host)

    def test_forged_ek_certificate(self):
        real = x509.load_der_x509_certificate(self.endorsement.certificate)
        # The forger even copies the real maker's name.
        forger = FakeCA(subject=real.issuer)
        forged = dataclasses.replace(
            self.endorsement,
            certificate=forger.ek_certificate(self.endorsement))
        self.assertRefused(exception.EndorsementError,
                           (HOST, 'does not chain to a CA in the EK CA '
                            'bundle'), endorsement=forged)
        # A forged intermediate does not help either.
        self.assertRefused(exception.EndorsementError, 'does not chain',
                           endorsement=forged,
                           intermediates=[forger.certificate])

    def test_trust_on_first_use(self):
        forged = dataclasses.replace(
            self.endorsement,
            certificate=FakeCA().ek_certificate(self.endorsement))
        identity = self.enroll(endorsement=forged, trust_on_first_use=True)
        self.assertTrue(identity.trust_on_first_use)
        self.assertEqual(hashlib.sha256(forged.certificate).hexdigest(),
                         identity.ek_certificate_sha256)

    def test_trust_on_first_use_still_needs_the_matching_key(self):
        swapped = dataclasses.replace(
            self.endorsement,
            certificate=self.other_endorsement.certificate)
        self.assertRefused(exception.EndorsementError,
                           (HOST, 'for another key than the TPM\'s EK'),
                           endorsement=swapped, trust_on_first_use=True)

    def test_ek_certificate_of_another_tpm(self):
        swapped = dataclasses.replace(
            self.endorsement,
            certificate=self.other_endorsement.certificate)
        self.assertRefused(exception.EndorsementError,
                           (HOST, 'the EK certificate is for another key'),
                           endorsement=swapped)

    def test_expired_ek_certificate(self):
        maker = FakeCA('Expired Maker CA')
        expired = dataclasses.replace(
            self.endorsement, certificate=maker.ek_certificate(
                self.endorsement, not_before=now() - 700 * DAY,
                not_after=now() - DAY))
        self.assertRefused(exception.EndorsementError,
                           (HOST, 'EK certificate', 'is not valid at'),
                           endorsement=expired,
                           anchors=[maker.certificate])

    def test_ek_certificate_not_yet_valid(self):
        maker = FakeCA('Early Maker CA')
        early = dataclasses.replace(
            self.endorsement, certificate=maker.ek_certificate(
                self.endorsement, not_before=now() + DAY))
        self.assertRefused(exception.EndorsementError,
                           (HOST, 'is not valid at'), endorsement=early,
                           anchors=[maker.certificate])

    def test_expired_ca_certificate(self):
        maker = FakeCA('Old Maker CA', not_before=now() - 700 * DAY,
                       not_after=now() - DAY)
        endorsement = dataclasses.replace(
            self.endorsement,
            certificate=maker.ek_certificate(self.endorsement))
        self.assertRefused(exception.EndorsementError,
                           ('EK CA certificate', 'Old Maker CA',
                            'is not valid at'),
                           endorsement=endorsement,
                           anchors=[maker.certificate])

    def test_good_chain_of_a_maker_of_the_tests_own(self):
        root = FakeCA('Maker Root CA')
        intermediate = FakeCA('Maker Issuing CA', issuer=root)
        endorsement = dataclasses.replace(
            self.endorsement,
            certificate=intermediate.ek_certificate(self.endorsement))
        identity = self.enroll(endorsement=endorsement,
                               anchors=[root.certificate],
                               intermediates=[intermediate.certificate])
        self.assertFalse(identity.trust_on_first_use)

    def test_intermediate_that_is_not_a_ca(self):
        root = FakeCA('Maker Root CA')
        not_a_ca = FakeCA('Not A CA', issuer=root, is_ca=False)
        endorsement = dataclasses.replace(
            self.endorsement,
            certificate=not_a_ca.ek_certificate(self.endorsement))
        self.assertRefused(exception.EndorsementError, 'does not chain',
                           endorsement=endorsement,
                           anchors=[root.certificate],
                           intermediates=[not_a_ca.certificate])

    def test_unparsable_ek_certificate(self):
        for certificate in (b'not a certificate',
                            self.endorsement.certificate[:-10],
                            b'-----BEGIN CERTIFICATE-----\nxx\n'):
            garbage = dataclasses.replace(self.endorsement,
                                          certificate=certificate)
            self.assertRefused(exception.EndorsementError,
                               'EK certificate cannot be parsed',
                               endorsement=garbage)

    def test_ek_certificate_of_an_unknown_x509_version(self):
        """Fails until load_certificate handles it: cryptography raises
        x509.InvalidVersion (not a ValueError) for a version other than
        v1 or v3, and it escapes challenge()."""
        der = self.endorsement.certificate
        version = bytes.fromhex('a003020102')
        self.assertEqual(der.index(version), der.find(b'\xa0'))
        for number in (b'\x03', b'\x21'):
            odd = dataclasses.replace(self.endorsement,
                                      certificate=der.replace(
                                          version, version[:-1] + number, 1))
            try:
                enrollment.challenge(HOST, odd, self.ak.public,
                                     self.tpm.anchors)
            except exception.EndorsementError as error:
                self.assertIn('EK certificate cannot be parsed', str(error))
            except Exception as error:
                self.fail('challenge let %s escape: %s (expected an '
                          'EndorsementError)' % (type(error).__name__,
                                                 error))
            else:
                self.fail('challenge accepted an X.509 certificate of '
                          'version %r' % number)

    def test_ek_that_cannot_decrypt(self):
        """The host presents its AK as its EK, with a certificate for it
        from a CA the verifier trusts: still not an endorsement key."""
        maker = FakeCA('Careless Maker CA')
        fake_ek = dataclasses.replace(
            self.endorsement, public=self.ak.public,
            certificate=maker.issue(
                '', public_key_of(self.ak.public)).public_bytes(
                serialization.Encoding.DER))
        self.assertRefused(exception.EndorsementError,
                           (HOST, 'the EK cannot decrypt'),
                           endorsement=fake_ek, anchors=[maker.certificate])

    def test_ak_of_another_tpm(self):
        """TPM A's EK, TPM B's AK: no TPM can answer the challenge."""
        sent = enrollment.challenge(HOST, self.endorsement,
                                    self.other_ak.public, self.tpm.anchors)
        # A holds the EK but not the AK the credential is bound to.
        self.assertRaises(exception.KororaError,
                          self.ak.activate_credential,
                          services.EK_TYPES, sent.credential_blob,
                          sent.encrypted_secret)
        # B holds the AK but not the EK the secret is encrypted to.
        self.assertRaises(exception.KororaError,
                          self.other_ak.activate_credential,
                          services.EK_TYPES, sent.credential_blob,
                          sent.encrypted_secret)
        # Whatever the host answers then is wrong.
        for answer in (bytes(enrollment.SECRET_SIZE), b'', None,
                       sent.secret.hex(), shared.nonce()):
            error = self.assertRaises(
                exception.EnrollmentError, enrollment.finish, HOST,
                self.endorsement, self.other_ak.public, sent, answer)
            self.assertIn('%s: credential activation failed' % HOST,
                          str(error))
        # The failed activations left both TPMs working.
        self.assertEqual(HOST, self.enroll().host)
        self.assertTrue(self.quote(self.other_tpm, self.other_ak,
                                   shared.nonce()).signature)

    def test_answer_to_another_challenge(self):
        first = enrollment.challenge(HOST, self.endorsement, self.ak.public,
                                     self.tpm.anchors)
        second = enrollment.challenge(HOST, self.endorsement,
                                      self.ak.public, self.tpm.anchors)
        answer = self.ak.activate_credential(services.EK_TYPES,
                                             first.credential_blob,
                                             first.encrypted_secret)
        error = self.assertRaises(exception.EnrollmentError,
                                  enrollment.finish, HOST,
                                  self.endorsement, self.ak.public, second,
                                  answer)
        self.assertIn('credential activation failed', str(error))

    def test_ak_that_is_not_restricted(self):
        attributes = (attestation_key_module.AK_ATTRIBUTES
                      & ~TPMA_OBJECT.RESTRICTED)
        public = TPM2B_PUBLIC.parse('ecc256:ecdsa-sha256',
                                    objectAttributes=attributes)
        self.assertRefused(exception.EnrollmentError,
                           ('the AK is not a restricted, TPM-bound '
                            'signing key', 'sign'),
                           ak_public=public.marshal())

    def test_ak_that_can_leave_the_tpm(self):
        attributes = (attestation_key_module.AK_ATTRIBUTES
                      & ~TPMA_OBJECT.FIXEDTPM & ~TPMA_OBJECT.FIXEDPARENT)
        public = TPM2B_PUBLIC.parse('ecc256:ecdsa-sha256:null',
                                    objectAttributes=attributes)
        self.assertRefused(exception.EnrollmentError,
                           'not a restricted, TPM-bound signing key',
                           ak_public=public.marshal())

    def test_ak_that_decrypts(self):
        storage = certify.storage_key_template(shared.nonce() * 2)
        self.assertRefused(exception.EnrollmentError,
                           'not a restricted, TPM-bound signing key',
                           ak_public=storage.marshal())

    def test_ak_of_an_unsupported_type(self):
        public = TPM2B_PUBLIC.parse(
            'keyedhash',
            objectAttributes=attestation_key_module.AK_ATTRIBUTES)
        self.assertRefused(exception.EnrollmentError,
                           'the AK is of type 0x0008, not RSA or ECC',
                           ak_public=public.marshal())

    def test_ak_with_a_weak_name_algorithm(self):
        public, _ = TPM2B_PUBLIC.unmarshal(self.ak.public)
        public.publicArea.nameAlg = TPM2_ALG.SHA1
        self.assertRefused(exception.EnrollmentError,
                           'name algorithm 0x0004 is weaker than SHA-256',
                           ak_public=public.marshal())

    def test_malformed_ak_public(self):
        for ak_public in (self.ak.public[:-1], self.ak.public + b'\0',
                          b'\0', b''):
            self.assertRefused(exception.KororaError, 'AK public key',
                               ak_public=ak_public)

    def test_ek_public_of_an_unsupported_kind(self):
        """An EK public key the verifier cannot use is refused.

        Fails until enrollment.challenge handles it: ek_public.to_der()
        raises ValueError ("unsupported key type: keyedhash" / "unsupported
        curve: bn_p256") out of challenge().
        """
        keyedhash = TPM2B_PUBLIC.parse('keyedhash')
        bn_curve = TPM2B_PUBLIC.parse('ecc256')
        bn_curve.publicArea.parameters.eccDetail.curveID = 0x0010
        for public in (keyedhash, bn_curve):
            odd = dataclasses.replace(self.endorsement,
                                      public=public.marshal())
            try:
                enrollment.challenge(HOST, odd, self.ak.public,
                                     self.tpm.anchors)
            except exception.EndorsementError as error:
                self.assertIn('EK', str(error))
            except Exception as error:
                self.fail('challenge let %s escape: %s (expected an '
                          'EndorsementError)' % (type(error).__name__,
                                                 error))
            else:
                self.fail('challenge accepted an unusable EK public key')

    def test_ek_certificate_with_an_unknown_key_algorithm(self):
        """An EK certificate whose key algorithm is unknown is refused.

        Fails until ek_certificate.public_key_matches handles it:
        certificate.public_key() raises cryptography's UnsupportedAlgorithm
        out of challenge().
        """
        der = self.endorsement.certificate
        self.assertEqual(1, der.count(_RSA_ENCRYPTION))
        odd = dataclasses.replace(self.endorsement, certificate=der.replace(
            _RSA_ENCRYPTION, _RSA_ENCRYPTION[:-1] + b'\x63'))
        try:
            enrollment.challenge(HOST, odd, self.ak.public,
                                 self.tpm.anchors)
        except exception.EndorsementError as error:
            self.assertIn('EK certificate', str(error))
        except Exception as error:
            self.fail('challenge let %s escape: %s (expected an '
                      'EndorsementError)' % (type(error).__name__, error))
        else:
            self.fail('challenge accepted an EK certificate with an '
                      'unknown key algorithm')
