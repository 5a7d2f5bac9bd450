"""Only operator-signed policy versions decide trust; one TPM is one
host; the verifier anchors the audit log on its schedule.

Real swtpm TPMs behind real vTPM managers (oslo.messaging's in-process
'fake' driver), a real SQLite database, real EC P-256 operator keys.
The attacker is who holds the database's write credentials: rows are
inserted and changed with raw SQL.
"""

import os
import time

import fixtures

import sqlalchemy as sa

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova import conf
from korora_nova.attestation import verdict as verdict_module
from korora_nova.db import api as db
from korora_nova import exception
from korora_nova.migration import audit
from tests import base
from korora_nova.demo import services
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.verifier import manager as verifier_manager
from korora_nova.rpcapi import vtpm_manager as rpcapi

POLICY = 'compute-2026-11'
WAIT = 20.0


class SignedPolicyTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(self.config.conf))
        self.useFixture(services.VerifierDatabaseFixture())
        # Before the managers start: they measure their configuration.
        self.operator = self.useFixture(
            services.OperatorKeyFixture(self.config.conf))
        self.tpm1 = self.useFixture(services.SoftwareTPMFixture())
        self.flags(ek_ca_bundle=self.tpm1.ca_bundle)
        self.host1 = self.useFixture(
            services.VTPMManagerFixture('compute-1', self.tpm1))
        self.api = rpcapi.VTPMManagerAPI()
        self.attestor = attestation.Attestor(self.api)
        enrollment.enroll(self.api, 'compute-1')

    def execute(self, statement, **parameters):
        with db.get_engine().begin() as connection:
            connection.execute(sa.text(statement), parameters)

    def current_values(self, host='compute-1'):
        """The PCR values host's TPM quotes now (verified)."""
        nonce = os.urandom(32)
        quote = self.api.attest(host, nonce)
        verdict = appraisal.appraise_quote(
            quote, appraisal.load_public_key(db.host_get(host).ak_public),
            attestation.attestation_data(nonce), None)
        self.assertTrue(verdict.evidence_valid, verdict.summary())
        return verdict.pcr_values

    def insert_policy(self, version, values, signature=None):
        """A policy row written behind the verifier's back."""
        reference = policy_module.from_values(POLICY, version, values)
        self.execute(
            'INSERT INTO policies (name, version, document, active, '
            'created_at, signature) VALUES (:name, :version, :document, '
            '1, :now, :signature)', name=POLICY, version=version,
            document=audit.canonical(reference.to_json()),
            now=db.utcnow(), signature=signature)
        return reference

    def messages(self, verdict):
        return '\n'.join(reason.message for reason in verdict.reasons)


class TestSignedPolicies(SignedPolicyTestCase):

    def test_signed_policy_makes_the_host_trusted(self):
        attestation.record_policy(self.api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', POLICY)
        verdict = self.attestor.attest('compute-1')
        self.assertTrue(verdict.trusted, verdict.summary())
        self.assertEqual('compute-1: trusted under policy %s v1' % POLICY,
                         verdict.summary())

    def test_inserted_unsigned_policy_is_ignored_fail_closed(self):
        db.host_set_policy('compute-1', POLICY)
        # The attacker's host changed, and it allows its own values.
        self.host1.extend_pcr(10, b'rootkit')
        self.insert_policy(1, self.current_values())
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertEqual({verdict_module.NO_POLICY}, verdict.codes())
        self.assertIn('policy %s version 1: not signed by a trusted '
                      'operator key (it has no signature: import it with '
                      '"korora-manage policy import --signing-key")'
                      % POLICY, verdict.summary())
        self.assertFalse(db.host_trust_all()['compute-1'][0])

    def test_unsigned_version_beside_a_signed_one_is_named(self):
        attestation.record_policy(self.api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', POLICY)
        self.host1.extend_pcr(10, b'rootkit')
        self.insert_policy(2, self.current_values())
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertIn(verdict_module.PCR_POLICY, verdict.codes())
        self.assertIn('compute-1: ignored policy %s version 2: not signed '
                      'by a trusted operator key' % POLICY,
                      self.messages(verdict))

    def test_policy_signed_by_an_untrusted_key_is_ignored(self):
        stranger = self.useFixture(services.OperatorKeyFixture(
            self.config.conf, trusted=False))
        reference = policy_module.from_values(POLICY, 1,
                                              self.current_values())
        db.policy_create(reference, signature=stranger.sign(reference))
        db.host_set_policy('compute-1', POLICY)
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertIn('policy %s version 1: not signed by a trusted '
                      'operator key (signed by key %s, which [korora] '
                      'policy_signing_keys does not list)'
                      % (POLICY, stranger.key_id), verdict.summary())
        # The same content signed by the operator is trusted.
        reference = policy_module.from_values(POLICY, 2,
                                              self.current_values())
        db.policy_create(reference, signature=self.operator.sign(reference))
        self.assertTrue(self.attestor.attest('compute-1').trusted)

    def test_policy_changed_after_signing_is_ignored(self):
        attestation.record_policy(self.api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', POLICY)
        self.host1.extend_pcr(10, b'rootkit')
        changed = policy_module.from_values(POLICY, 1, self.current_values())
        self.execute('UPDATE policies SET document = :document',
                     document=audit.canonical(changed.to_json()))
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertIn('policy %s version 1: its content differs from what '
                      'the operator signed (it was changed after signing)'
                      % POLICY, verdict.summary())

    def test_signature_copied_to_another_version_is_ignored(self):
        attestation.record_policy(self.api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', POLICY)
        row = db.policy_get(POLICY, 1)
        # Version 3's row holds version 1's signed document: the content
        # matches its signature, but the signature says version 1.
        self.execute(
            'INSERT INTO policies (name, version, document, active, '
            'created_at, signature) VALUES (:name, 3, :document, 1, :now, '
            ':signature)', name=POLICY, document=row.document,
            now=db.utcnow(), signature=row.signature)
        policies, ignored = attestation.signed_policies(
            db.host_get('compute-1'))
        self.assertEqual(['%s v1' % POLICY], [p.label for p in policies])
        self.assertEqual(['policy %s version 3: the operator signed it as '
                          'policy %s version 1' % (POLICY, POLICY)], ignored)

    def test_rotation_either_trusted_key_works(self):
        new = self.useFixture(services.OperatorKeyFixture(self.config.conf))
        self.assertEqual([self.operator.public_path, new.public_path],
                         self.config.conf.korora.policy_signing_keys)
        attestation.record_policy(self.api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', POLICY)
        self.assertTrue(self.attestor.attest('compute-1').trusted)
        # The old key is retired before anything was re-signed: fail
        # closed, and say which key signed.
        self.flags(policy_signing_keys=[new.public_path])
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertIn('signed by key %s' % self.operator.key_id,
                      verdict.summary())
        # Re-recorded under the new key: trusted again.
        attestation.record_policy(self.api, 'compute-1', POLICY, 2, new.key)
        verdict = self.attestor.attest('compute-1')
        self.assertTrue(verdict.trusted, verdict.summary())
        self.assertEqual('%s v2' % POLICY, verdict.policy)
        # Both keys trusted: both versions count.
        self.flags(policy_signing_keys=[self.operator.public_path,
                                        new.public_path])
        self.assertEqual(['%s v2' % POLICY, '%s v1' % POLICY],
                         [p.label for p in attestation.active_policies(
                             db.host_get('compute-1'))])

    def test_no_usable_trusted_key_fails_closed(self):
        attestation.record_policy(self.api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', POLICY)
        self.flags(policy_signing_keys=[])
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertIn('[korora] policy_signing_keys lists no key',
                      verdict.summary())
        missing = os.path.join(self.useFixture(
            fixtures.TempDir()).path, 'gone.pem')
        self.flags(policy_signing_keys=[missing])
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertIn('cannot read the policy signing key %s' % missing,
                      verdict.summary())

    def test_oversized_signature_is_refused_unparsed(self):
        reference = policy_module.from_values(POLICY, 1,
                                              self.current_values())
        error = self.assertRaises(
            exception.PolicySignatureError, policy_module.verified, POLICY,
            1, audit.canonical(reference.to_json()),
            'e' * (policy_module.MAX_SIGNATURE + 1),
            policy_module.trusted_keys([self.operator.public_path]))
        self.assertIn('its signature is larger than', str(error))

    def test_signing_key_must_be_p256(self):
        path = os.path.join(self.useFixture(
            fixtures.TempDir()).path, 'not-a-key.pem')
        with open(path, 'w') as stream:
            stream.write('-----BEGIN PRIVATE KEY-----\nAAAA\n')
        error = self.assertRaises(exception.SigningKeyError,
                                  policy_module.load_signing_key, path)
        self.assertIn('signing key %s is not an unencrypted PEM private '
                      'key' % path, str(error))


class TestRememberedVerification(SignedPolicyTestCase):
    """The verifier remembers verified policy versions and loaded AKs;
    whatever changes under it is judged afresh."""

    def setUp(self):
        super().setUp()
        attestation.record_policy(self.api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', POLICY)
        # Remembered from here on.
        self.assertTrusted()

    def assertTrusted(self):
        verdict = self.attestor.attest('compute-1')
        self.assertTrue(verdict.trusted, verdict.summary())
        return verdict

    def assertUntrusted(self, *words):
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        for text in words:
            self.assertIn(text, verdict.summary())
        self.assertFalse(db.host_trust_all()['compute-1'][0])
        return verdict

    def test_a_remembered_policy_is_the_stored_one(self):
        host = db.host_get('compute-1')
        [first], [] = attestation.signed_policies(host)
        [again], [] = attestation.signed_policies(host)
        self.assertIs(first, again)
        row = db.policy_get(POLICY, 1)
        self.assertEqual(policy_module.loads(row.document), first)

    def test_a_row_changed_after_verification_is_judged_afresh(self):
        self.host1.extend_pcr(10, b'rootkit')
        changed = policy_module.from_values(POLICY, 1, self.current_values())
        self.execute('UPDATE policies SET document = :document',
                     document=audit.canonical(changed.to_json()))
        self.assertUntrusted('policy %s version 1: its content differs '
                             'from what the operator signed' % POLICY)

    def test_a_re_signed_row_is_judged_afresh(self):
        row = db.policy_get(POLICY, 1)
        reference = policy_module.loads(row.document)
        stranger = self.useFixture(services.OperatorKeyFixture(
            self.config.conf, trusted=False))
        self.execute('UPDATE policies SET signature = :signature',
                     signature=stranger.sign(reference))
        self.assertUntrusted('signed by key %s, which [korora] '
                             'policy_signing_keys does not list'
                             % stranger.key_id)
        # Signed again by the operator (another ES256 signature of the
        # same document): trusted again.
        signature = self.operator.sign(reference)
        self.assertNotEqual(row.signature, signature)
        self.execute('UPDATE policies SET signature = :signature',
                     signature=signature)
        self.assertTrusted()

    def test_a_key_removed_from_the_trusted_keys_is_judged_afresh(self):
        other = self.useFixture(services.OperatorKeyFixture(
            self.config.conf))
        self.flags(policy_signing_keys=[other.public_path])
        self.assertUntrusted('signed by key %s' % self.operator.key_id)
        self.flags(policy_signing_keys=[self.operator.public_path])
        self.assertTrusted()

    def test_a_trusted_key_file_replaced_in_place_is_judged_afresh(self):
        stranger = self.useFixture(services.OperatorKeyFixture(
            self.config.conf, trusted=False))
        stat = os.stat(self.operator.public_path)
        with open(stranger.public_path, 'rb') as source:
            data = source.read()
        with open(self.operator.public_path, 'wb') as target:
            target.write(data)
        # Another stamp however coarse the file system's clock.
        os.utime(self.operator.public_path,
                 ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
        self.assertUntrusted('signed by key %s, which [korora] '
                             'policy_signing_keys does not list'
                             % self.operator.key_id)

    def test_a_changed_ak_is_loaded_afresh(self):
        enrolled = db.host_get('compute-1').ak_public
        # Another TPM's AK in the host's row (whoever can write the
        # database): compute-1's quotes no longer verify.
        other = self.useFixture(services.SoftwareTPMFixture())
        self.execute('UPDATE hosts SET ak_public = :ak',
                     ak=other.attestation_key().public)
        self.assertUntrusted('signature does not verify with the enrolled '
                             'AK')
        self.execute('UPDATE hosts SET ak_public = :ak', ak=enrolled)
        self.assertTrusted()


class TestOneTPMOneHost(SignedPolicyTestCase):

    def test_same_tpm_under_a_second_name_is_refused(self):
        first = db.host_get('compute-1')
        self.host1.stop()
        # The same swtpm (same EK, same persistent AK) now answers as
        # compute-9.
        self.useFixture(services.VTPMManagerFixture('compute-9', self.tpm1))
        error = self.assertRaises(exception.EnrollmentError,
                                  enrollment.enroll, self.api, 'compute-9')
        self.assertEqual(
            'compute-9: its TPM is already enrolled as host compute-1 (same '
            'AK %s): one TPM cannot vouch for two hosts; remove compute-1 '
            'first if the machine was renamed' % first.ak_name, str(error))
        self.assertEqual(['compute-1'], [h.name for h in db.host_list()])
        # Renamed for real: remove the old name, then enroll the new one.
        db.host_delete('compute-1')
        enrollment.enroll(self.api, 'compute-9')
        self.assertEqual(first.ak_name, db.host_get('compute-9').ak_name)
        self.assertTrue(audit.verify().ok)


class TestPurposes(SignedPolicyTestCase):

    def test_unknown_purpose_is_refused_by_the_manager(self):
        # Even the verifier's own challenge: the manager quotes only for
        # the purposes it knows (NotAuthorized in process, TPMError over
        # a broker).
        signer = results.SigningKey.load(
            conf.CONF.korora.verifier_signing_key)
        challenge = signer.sign(results.CHALLENGE, 'compute-1', 60, {
            'eat_nonce': results.nonce_claim(b'\x01' * 32),
            'korora.purpose': 'raw'})
        error = self.assertRaises(
            exception.KororaError, self.api._call, 'compute-1', 'attest',
            challenge=challenge)
        self.assertIn('names no purpose this manager quotes for', str(error))

    def test_attest_quote_signs_the_attest_purpose(self):
        nonce = os.urandom(32)
        quote = self.api.attest('compute-1', nonce)
        key = appraisal.load_public_key(db.host_get('compute-1').ak_public)
        for label in purpose.ALL:
            verdict = appraisal.appraise_quote(
                quote, key, purpose.qualifying_data(label, nonce), None)
            self.assertEqual(label == purpose.ATTEST, verdict.evidence_valid,
                             purpose.name(label))
        self.assertFalse(appraisal.appraise_quote(quote, key, nonce,
                                                  None).evidence_valid)


class TestScheduledAnchoring(SignedPolicyTestCase):

    def setUp(self):
        super().setUp()
        self.tpm2 = self.useFixture(services.SoftwareTPMFixture())
        self.useFixture(services.VTPMManagerFixture('compute-2', self.tpm2))
        enrollment.enroll(self.api, 'compute-2')
        self.verifier = verifier_manager.Verifier(self.config.conf,
                                                  self.attestor)
        self.addCleanup(self.verifier.stop)

    def test_no_anchor_host_no_scheduled_anchor(self):
        self.flags(audit_anchor_entries=1)
        self.assertIsNone(self.verifier.anchor_due())
        self.assertEqual([], audit.anchors())

    def test_anchored_after_n_entries_by_the_schedule(self):
        self.flags(audit_anchor_host='compute-2', audit_anchor_entries=4,
                   audit_anchor_interval=3600)
        # Two enrollments: not yet.
        self.assertIsNone(self.verifier.anchor_due())
        self.assertEqual([], audit.anchors())
        # The schedule attests both (due since enrollment): 4 entries.
        self.verifier.start()
        deadline = time.monotonic() + WAIT
        while not audit.anchors() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.verifier.stop()
        [anchor] = audit.anchors()
        self.assertEqual('compute-2', anchor.host)
        self.assertGreaterEqual(anchor.seq, 4)
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        self.assertEqual(anchor.seq, report.last_anchor_seq)
        # Nothing new since: nothing to anchor.
        if report.last_seq == anchor.seq:
            self.assertIsNone(self.verifier.anchor_due())
        self.assert_only_an_anchor(anchor)

    def assert_only_an_anchor(self, anchor):
        """The anchor's quote verifies under the anchor purpose only."""
        head = bytes.fromhex(audit.entry_hash(anchor.seq))
        quote = evidence.QuoteEvidence(
            anchor.quote_message, anchor.quote_signature,
            self.anchor_values(anchor))
        key = appraisal.load_public_key(db.host_get('compute-2').ak_public)
        for label in purpose.ALL:
            verdict = appraisal.appraise_quote(
                quote, key, purpose.qualifying_data(label, head), None)
            self.assertEqual(label == purpose.ANCHOR, verdict.evidence_valid,
                             purpose.name(label))
            if label != purpose.ANCHOR:
                self.assertIn(verdict_module.NONCE, verdict.codes())
        self.assertFalse(appraisal.appraise_quote(quote, key, head,
                                                  None).evidence_valid)

    def anchor_values(self, anchor):
        import json

        from korora_nova.attestation import pcr_values
        return pcr_values.from_json(json.loads(anchor.pcr_values))

    def test_anchored_after_the_interval_however_few_entries(self):
        # Not due while the oldest unanchored entry is younger than the
        # interval (an hour: however slow this machine is)...
        self.flags(audit_anchor_host='compute-1', audit_anchor_entries=1000,
                   audit_anchor_interval=3600)
        self.assertIsNone(self.verifier.anchor_due())
        # ...due once it is older.
        self.flags(audit_anchor_interval=1)
        time.sleep(1.1)
        anchor = self.verifier.anchor_due()
        self.assertIsNotNone(anchor)
        self.assertEqual((2, 'compute-1'), (anchor.seq, anchor.host))
        self.assertTrue(audit.verify().ok)

    def test_failed_anchoring_backs_off_and_the_schedule_goes_on(self):
        self.flags(audit_anchor_host='compute-7', audit_anchor_entries=1,
                   audit_anchor_interval=1)
        # Not enrolled: logged, nothing anchored, no exception.
        self.assertIsNone(self.verifier.anchor_due())
        self.assertEqual([], audit.anchors())
        # Fixed at once, but the next try waits for the back-off.
        self.flags(audit_anchor_host='compute-2')
        self.assertIsNone(self.verifier.anchor_due())
        time.sleep(1.1)
        anchor = self.verifier.anchor_due()
        self.assertEqual('compute-2', anchor.host)
