"""Every TPM signature means one thing: a signature made for one purpose
(attest, manifest, arrival, certify, anchor) never verifies as one made
for another, whatever payload the caller chose.

A real swtpm signs; the project's appraisal checks. Each purpose is made
with the TPM command it is made with in korora (a quote, or TPM2_Certify
for the per-migration key), and also with the other command, so that
the label alone is shown to separate them, not the kind of evidence.
"""

import itertools

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import purpose
from korora_nova.attestation import verdict as verdict_module
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import certify
from korora_nova.tpm import quote

SELECTION = [('sha256', 0), ('sha256', 10)]
# One payload for every purpose: the attacker's best case (a verifier
# nonce that happens to equal a manifest's digest, an entry hash, ...).
PAYLOAD = bytes(range(32))
NAMES = {label: purpose.name(label) for label in purpose.ALL}


class TestSignaturePurposes(base.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pairs = list(itertools.permutations(purpose.ALL, 2))

    def setUp(self):
        super().setUp()
        self.tpm = self.useFixture(services.SoftwareTPMFixture())
        self.ak = self.tpm.attestation_key()
        self.key = appraisal.load_public_key(self.ak.public)
        # Made once per purpose, checked against every other.
        self.quotes = {label: quote.quote(
            self.tpm.connection, self.ak, SELECTION,
            purpose.qualifying_data(label, PAYLOAD))
            for label in purpose.ALL}
        self.keys = {label: certify.create_certified_storage_key(
            self.tpm.connection, self.ak,
            purpose.qualifying_data(label, PAYLOAD))
            for label in purpose.ALL}

    # how korora checks each purpose

    def as_quote(self, made, label):
        return appraisal.appraise_quote(
            made, self.key, purpose.qualifying_data(label, PAYLOAD), None,
            host='compute-1')

    def as_certification(self, key, label):
        return appraisal.appraise_certification(
            key.attestation, key.signature, self.key,
            purpose.qualifying_data(label, PAYLOAD), key.public,
            host='compute-1')

    def check(self, label, signature):
        """Verify signature (a quote or a certified key) the way korora
        checks label's purpose: TPM2_Certify for certify, a quote for
        every other."""
        if label == purpose.CERTIFY:
            if isinstance(signature, certify.CertifiedKey):
                return self.as_certification(signature, label)
            return appraisal.appraise_certification(
                signature.message, signature.signature, self.key,
                purpose.qualifying_data(label, PAYLOAD),
                self.keys[label].public, host='compute-1')
        if isinstance(signature, certify.CertifiedKey):
            signature = evidence.QuoteEvidence(
                signature.attestation, signature.signature,
                self.quotes[label].pcr_values)
        return self.as_quote(signature, label)

    def made_for(self, label):
        """The signature korora's TPM makes for label's purpose."""
        if label == purpose.CERTIFY:
            return self.keys[label]
        return self.quotes[label]

    def assert_refused(self, found, made, checked):
        self.assertFalse(found.evidence_valid, '%s signature accepted as %s'
                         % (NAMES[made], NAMES[checked]))
        codes = [reason.code for reason in found.reasons]
        self.assertIn(verdict_module.NONCE, codes,
                      '%s as %s: %s' % (NAMES[made], NAMES[checked],
                                        found.summary()))

    # the tests

    def test_each_signature_verifies_for_its_own_purpose(self):
        # The control: what follows fails for the label only.
        for label in purpose.ALL:
            found = self.check(label, self.made_for(label))
            self.assertTrue(found.evidence_valid,
                            '%s: %s' % (NAMES[label], found.summary()))
            self.assertEqual(purpose.qualifying_data(label, PAYLOAD),
                             found.attestation.extra_data)

    def test_no_signature_verifies_for_another_purpose(self):
        self.assertEqual(30, len(self.pairs))
        for made, checked in self.pairs:
            self.assert_refused(self.check(checked, self.made_for(made)),
                                made, checked)

    def test_quotes_of_two_purposes_never_stand_for_each_other(self):
        # Same TPM command, same payload: the label alone tells them
        # apart (a verifier's attestation quote is no manifest, no
        # arrival, no audit anchor).
        for made, checked in self.pairs:
            found = self.as_quote(self.quotes[made], checked)
            self.assert_refused(found, made, checked)
            self.assertIn('nonce mismatch: stale or replayed evidence',
                          found.summary())

    def test_certifications_of_two_purposes_never_stand_for_each_other(
            self):
        for made, checked in self.pairs:
            self.assert_refused(
                self.as_certification(self.keys[made], checked), made,
                checked)

    def test_no_label_yields_the_raw_payload(self):
        # The old design signed the payload as it was: no purpose's
        # qualifying data equals it, nor any other purpose's.
        values = {purpose.qualifying_data(label, PAYLOAD)
                  for label in purpose.ALL}
        self.assertEqual(len(purpose.ALL), len(values))
        self.assertNotIn(PAYLOAD, values)
        found = appraisal.appraise_quote(self.quotes[purpose.ATTEST],
                                         self.key, PAYLOAD, None)
        self.assertFalse(found.evidence_valid)

    def test_unknown_purposes_are_refused(self):
        for label in (b'korora attest v2', b'', b'korora manifest v1\x00'):
            self.assertRaises(ValueError, purpose.qualifying_data, label,
                              PAYLOAD)
        self.assertRaises(TypeError, purpose.qualifying_data,
                          purpose.ATTEST, PAYLOAD.hex())
