"""What decides trust is in the audit chain, and "audit verify" names
every row written behind the verifier's back.

A real swtpm behind a real vTPM manager (in-process bus), a real SQLite
database, real operator keys. The tampering is raw SQL, as someone with
the database's write credentials (a compute host's old ones) does it.
"""

import json
import os

import fixtures

import sqlalchemy as sa

from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import purpose
from korora_nova.db import api as db
from korora_nova.db import models
from korora_nova.db import audit_log
from korora_nova.migration import audit
from tests import base
from tests.fixtures import raw_sql
from korora_nova.demo import services
from tests.unit.migration import test_manage
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.rpcapi import vtpm_manager as rpcapi

POLICY = 'compute-2026-11'


class TrustAuditTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(self.config.conf))
        self.useFixture(services.VerifierDatabaseFixture())
        self.operator = self.useFixture(
            services.OperatorKeyFixture(self.config.conf))
        tpm = self.useFixture(services.SoftwareTPMFixture())
        self.flags(ek_ca_bundle=tpm.ca_bundle)
        self.host = self.useFixture(
            services.VTPMManagerFixture('compute-1', tpm))
        self.api = rpcapi.VTPMManagerAPI()
        enrollment.enroll(self.api, 'compute-1')
        attestation.record_policy(self.api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', POLICY)
        self.verdict = attestation.Attestor(self.api).attest('compute-1')
        self.assertTrue(self.verdict.trusted, self.verdict.summary())

    def execute(self, statement, **parameters):
        with db.get_engine().begin() as connection:
            connection.execute(sa.text(statement), parameters)

    def problems(self, report):
        return [(problem.code, problem.row) for problem in report.problems]


class TestTrustEntries(TrustAuditTestCase):

    def test_every_trust_decision_is_an_entry(self):
        db.policy_set_active(POLICY, 1, False)
        db.policy_set_active(POLICY, 1, True)
        db.host_delete('compute-1')
        entries = audit.entries()
        self.assertEqual(
            ['host-enroll', 'policy-import', 'policy-assign', 'verdict',
             'policy-deactivate', 'policy-activate', 'host-remove'],
            [entry.step for entry in entries])
        self.assertEqual({None}, {entry.migration_uuid for entry in entries})
        details = json.loads(entries[3].details)
        verdict_row = db.verdicts_for_host('compute-1')[0]
        self.assertEqual({audit_log.row_key(verdict_row):
                          audit_log.row_digest(verdict_row),
                          '["host_trust","compute-1"]': details['rows'][
                              '["host_trust","compute-1"]']},
                         details['rows'])
        self.assertEqual({'["hosts","compute-1"]': None,
                          '["host_trust","compute-1"]': None},
                         json.loads(entries[6].details)['rows'])
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        # The policy and the removed host's verdict remain.
        self.assertEqual(2, report.rows)

    def test_intact_database_verifies(self):
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        self.assertEqual(4, report.rows)
        self.assertEqual('intact', report.summary()[-1])


class TestRowsBehindTheVerifiersBack(TrustAuditTestCase):

    def test_trust_flipped_by_sql(self):
        self.execute("UPDATE host_trust SET summary = 'compute-1: trusted', "
                     "trusted = 0")
        self.execute("UPDATE host_trust SET trusted = 1")
        report = audit.verify()
        # The chain holds, so "trusted" again is not enough: the summary
        # changed too.
        self.assertEqual([(audit.ROW_CHANGED, 'host_trust row compute-1')],
                         self.problems(report))
        self.assertIn('host_trust row compute-1: changed behind the '
                      'verifier\'s back: its content hashes to sha256:',
                      str(report.first_problem))
        self.assertIn('TAMPERED: 1 problem, the first in host_trust row '
                      'compute-1', report.summary())

    def test_verdict_of_an_untrusted_host_turned_trusted(self):
        self.host.extend_pcr(10, b'rootkit')
        self.assertFalse(attestation.Attestor(self.api).attest(
            'compute-1').trusted)
        self.execute('UPDATE host_trust SET trusted = 1')
        self.assertTrue(db.host_trust_all()['compute-1'][0])
        report = audit.verify()
        self.assertEqual([(audit.ROW_CHANGED, 'host_trust row compute-1')],
                         self.problems(report))

    def test_inserted_host_is_reported(self):
        self.execute(
            "INSERT INTO hosts (name, ek_type, ek_certificate, "
            "ek_certificate_sha256, ek_public, ak_public, ak_name, "
            "trust_on_first_use, policy_name, enrolled_at, "
            "next_attestation_at) SELECT 'compute-666', ek_type, "
            "ek_certificate, ek_certificate_sha256, ek_public, ak_public, "
            "ak_name, trust_on_first_use, policy_name, enrolled_at, "
            "next_attestation_at FROM hosts WHERE name = 'compute-1'")
        report = audit.verify()
        self.assertEqual([(audit.UNAUDITED, 'hosts row compute-666')],
                         self.problems(report))
        self.assertEqual(
            'hosts row compute-666: not in the audit log: it was written '
            'behind the verifier\'s back (the verifier records every row '
            'it writes)', str(report.first_problem))

    def test_changed_host_identity_is_reported(self):
        self.execute("UPDATE hosts SET ak_public = :ak",
                     ak=b'\x00\x01' + os.urandom(64))
        report = audit.verify()
        self.assertEqual([(audit.ROW_CHANGED, 'hosts row compute-1')],
                         self.problems(report))
        self.assertIn('the audit log recorded sha256:',
                      str(report.first_problem))

    def test_host_schedule_and_clock_floor_are_not_trust_content(self):
        # What every attestation moves is not a trust decision.
        self.execute('UPDATE hosts SET next_attestation_at = :now',
                     now=db.utcnow())
        self.assertTrue(audit.verify().ok)

    def test_deactivated_policy_reactivated_by_sql(self):
        db.policy_set_active(POLICY, 1, False)
        self.execute('UPDATE policies SET active = 1')
        report = audit.verify()
        self.assertEqual([(audit.ROW_CHANGED,
                           'policies row %s version 1 (active)' % POLICY)],
                         self.problems(report))

    def test_inserted_unsigned_policy_is_reported_twice(self):
        reference = policy_module.from_values(
            POLICY, 2, self.verdict.pcr_values)
        self.execute(
            'INSERT INTO policies (name, version, document, active, '
            'created_at) VALUES (:name, 2, :document, 1, :now)',
            name=POLICY, document=audit.canonical(reference.to_json()),
            now=db.utcnow())
        report = audit.verify()
        row = 'policies row %s version 2 (active)' % POLICY
        self.assertEqual([(audit.UNAUDITED, row), (audit.UNSIGNED, row)],
                         self.problems(report))
        self.assertIn('%s: policy %s version 2: not signed by a trusted '
                      'operator key (it has no signature' % (row, POLICY),
                      str(report.problems[1]))

    def test_policy_by_an_untrusted_key_is_reported(self):
        stranger = self.useFixture(services.OperatorKeyFixture(
            self.config.conf, trusted=False))
        reference = policy_module.from_values(
            POLICY, 2, self.verdict.pcr_values)
        db.policy_create(reference, signature=stranger.sign(reference))
        report = audit.verify()
        self.assertEqual([(audit.UNSIGNED, 'policies row %s version 2 '
                           '(active)' % POLICY)], self.problems(report))
        self.assertIn('signed by key %s' % stranger.key_id,
                      str(report.first_problem))

    def test_deleted_verdict_is_reported(self):
        verdict_id = db.verdicts_for_host('compute-1')[0].id
        self.execute('DELETE FROM verdicts')
        report = audit.verify()
        self.assertEqual([(audit.ROW_DELETED, 'verdicts row %d'
                           % verdict_id)], self.problems(report))

    def test_removed_host_restored_by_sql_is_reported(self):
        with raw_sql.session() as session:
            host = session.query(models.Host).one()
            values = {column.name: getattr(host, column.name)
                      for column in models.Host.__table__.columns
                      if column.name != 'id'}
        db.host_delete('compute-1')
        with raw_sql.session() as session:
            session.add(models.Host(**values))
        report = audit.verify()
        self.assertEqual([(audit.UNAUDITED, 'hosts row compute-1')],
                         self.problems(report))


class TestAnchorPurpose(TrustAuditTestCase):

    def test_an_attestation_quote_is_no_anchor(self):
        anchor = audit.anchor(self.api, 'compute-1')
        head = bytes.fromhex(audit.entry_hash(anchor.seq))
        # A quote the same TPM made for the attest purpose over the same
        # bytes, stored as the anchor.
        quote = self.api.attest('compute-1', head)
        with raw_sql.session() as session:
            row = session.get(models.AuditAnchor, anchor.seq)
            row.quote_message = quote.message
            row.quote_signature = quote.signature
        report = audit.verify()
        self.assertEqual([(anchor.seq, audit.ANCHOR_MISMATCH)],
                         [(p.seq, p.code) for p in report.problems])
        self.assertIn('(or the quote was not made to anchor the log)',
                      str(report.first_problem))

    def test_the_anchor_signs_under_the_anchor_label(self):
        anchor = audit.anchor(self.api, 'compute-1')
        head = bytes.fromhex(audit.entry_hash(anchor.seq))
        self.assertEqual(purpose.qualifying_data(purpose.ANCHOR, head),
                         audit.anchored_data(head.hex()))


class TestVerifyCommand(test_manage.ManageTestCase):
    """korora-manage policy import signs; audit verify exits 1 on a row
    changed behind the verifier's back."""

    def setUp(self):
        super().setUp()
        self.operator = self.useFixture(
            services.OperatorKeyFixture(self.config.conf))
        with open(self.config_file, 'a') as stream:
            stream.write('[korora]\npolicy_signing_keys = %s\n'
                         % self.operator.public_path)
        folder = self.useFixture(fixtures.TempDir()).path
        self.policy_file = os.path.join(folder, 'policy.json')
        with open(self.policy_file, 'w') as stream:
            json.dump({'name': POLICY, 'version': 3,
                       'pcrs': {'sha256': {'0': ['00' * 32]}}}, stream)

    def test_import_signs_and_verify_catches_sql(self):
        status, out, err = self.manage('policy', 'import', self.policy_file,
                                       '--signing-key',
                                       self.operator.private_path)
        self.assertEqual(0, status, err)
        self.assertEqual('policy %s v3 imported (1 PCRs, active), signed by '
                         'key %s\n' % (POLICY, self.operator.key_id), out)
        status, out, err = self.manage('policy', 'list')
        self.assertEqual(0, status, err)
        self.assertEqual(['NAME', 'VERSION', 'ACTIVE', 'SIGNED', 'IMPORTED',
                          POLICY, '3', 'yes', 'yes'], out.split()[:9])
        status, out, err = self.manage('audit', 'verify')
        self.assertEqual(0, status, out + err)
        self.assertTrue(out.endswith('intact\n'), out)

        self.execute("UPDATE policies SET active = 0")
        status, out, err = self.manage('audit', 'verify')
        self.assertEqual(1, status, err)
        self.assertIn('TAMPERED: 1 problem, the first in policies row %s '
                      'version 3 (inactive)\n' % POLICY, out)
        self.assertIn('  policies row %s version 3 (inactive): changed '
                      'behind the verifier\'s back' % POLICY, out)

    def test_sign_prints_a_signature_for_an_import_elsewhere(self):
        status, out, err = self.manage('policy', 'sign', self.policy_file,
                                       '--signing-key',
                                       self.operator.private_path)
        self.assertEqual(0, status, err)
        self.assertEqual(1, out.count('\n'))
        reference = policy_module.load(self.policy_file)
        keys = policy_module.trusted_keys([self.operator.public_path])
        self.assertEqual(reference, policy_module.verified(
            POLICY, 3, json.dumps(reference.to_json()), out.strip(), keys))
        # Signing writes nothing.
        self.assertEqual([], db.policy_list())

    def test_import_needs_a_usable_signing_key(self):
        status, out, err = self.manage('policy', 'import', self.policy_file)
        self.assertEqual(2, status)
        self.assertIn('--signing-key', err)
        status, out, err = self.manage('policy', 'import', self.policy_file,
                                       '--signing-key',
                                       self.operator.public_path)
        self.assertEqual(2, status)
        self.assertIn('korora-manage: --signing-key: the signing key %s is '
                      'not an unencrypted PEM private key'
                      % self.operator.public_path, err)
        self.assertEqual([], db.policy_list())
