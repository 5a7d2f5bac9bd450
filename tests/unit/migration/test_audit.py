"""The audit log's hash chain and its TPM anchors, and how tampering
shows.

Real swtpm TPMs behind real vTPM managers (oslo.messaging's in-process
'fake' driver), a real SQLite verifier database. The tampering is what
someone with write access to the database can do: raw UPDATEs and
DELETEs, a chain rewritten with every hash recomputed, a quote made by
another TPM.
"""

import json

import sqlalchemy as sa

from korora_nova.attestation import evidence
from korora_nova.attestation import purpose
from korora_nova.db import api as db
from korora_nova.db import models
from korora_nova.db import audit_log
from korora_nova import exception
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from tests import base
from tests.fixtures import raw_sql
from korora_nova.demo import services
from korora_nova.verifier import enrollment
from korora_nova.rpcapi import vtpm_manager as rpcapi

INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'


class AuditTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(self.config.conf))
        self.useFixture(services.VerifierDatabaseFixture())
        tpm1 = self.useFixture(services.SoftwareTPMFixture())
        tpm2 = self.useFixture(services.SoftwareTPMFixture())
        self.flags(ek_ca_bundle=tpm1.ca_bundle)
        self.useFixture(services.VTPMManagerFixture('compute-1', tpm1))
        self.useFixture(services.VTPMManagerFixture('compute-2', tpm2))
        self.api = rpcapi.VTPMManagerAPI()
        enrollment.enroll(self.api, 'compute-1')
        enrollment.enroll(self.api, 'compute-2')

    def migrate(self, migration_uuid=MIGRATION, to=states.COMMITTED):
        """A migration's entries, with evidence digests in details."""
        records.create(migration_uuid, INSTANCE, 'compute-1', 'compute-2')
        for state in states.FORWARD[1:states.FORWARD.index(to) + 1]:
            records.transition(migration_uuid, 'compute-2', state, details={
                'evidence': b'quote for ' + state.encode()})

    def execute(self, statement, **parameters):
        with db.get_engine().begin() as connection:
            return connection.execute(sa.text(statement), parameters)

    def rewrite(self, seq, details):
        """Change entry seq's details and recompute every hash from it
        on, as someone who knows the hashing scheme would."""
        with raw_sql.session() as session:
            rows = session.query(models.AuditEntry).filter(
                models.AuditEntry.seq >= seq - 1).order_by(
                models.AuditEntry.seq).all()
            previous = audit_log.GENESIS
            for row in rows:
                if row.seq < seq:
                    previous = row.entry_hash
                    continue
                if row.seq == seq:
                    row.details = audit_log.canonical_details(details)
                row.prev_hash = previous
                row.entry_hash = audit_log.compute_hash(
                    previous, row.seq, row.migration_uuid, row.host,
                    row.step, row.from_state, row.to_state, row.details,
                    row.created_at)
                previous = row.entry_hash

    def codes(self, report):
        return [(problem.seq, problem.code) for problem in report.problems]


class TestIntactLog(AuditTestCase):

    def test_anchored_log_verifies(self):
        self.migrate()
        anchor = audit.anchor(self.api, 'compute-1')
        # Entries 1 and 2 enrolled the hosts.
        self.assertEqual((9, 'compute-1'), (anchor.seq, anchor.host))
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        self.assertEqual([], report.warnings)
        self.assertEqual((9, 1, 9, 9, 0), (
            report.entries, report.first_seq, report.last_seq,
            report.last_anchor_seq, report.unanchored))
        self.assertEqual('intact', report.summary()[-1])
        self.assertIn('anchors: 1, the last at seq 9 by compute-1\'s TPM',
                      report.summary())

    def test_an_anchor_asked_through_the_api_signs_who_asked(self):
        self.migrate()
        requester = {'user_id': 'alice', 'project_id': 'admin-project'}
        anchor = audit.anchor(self.api, 'compute-1', requester=requester)
        entry = db.audit_head()
        self.assertEqual((10, 10, 'anchor-request', 'compute-1'), (
            anchor.seq, entry.seq, entry.step, entry.host))
        self.assertEqual({'requested_by': requester},
                         json.loads(entry.details))
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        self.assertEqual((10, 0), (report.last_anchor_seq,
                                   report.unanchored))

    def test_entries_after_the_last_anchor_are_a_warning(self):
        report = audit.verify()
        self.assertTrue(report.ok)
        self.assertEqual(['no entry is anchored by a TPM yet: 2 entries '
                          'could be rewritten unnoticed'], report.warnings)
        self.migrate(to=states.TRANSFERRING)
        report = audit.verify()
        self.assertTrue(report.ok)
        self.assertEqual(['no entry is anchored by a TPM yet: 6 entries '
                          'could be rewritten unnoticed'], report.warnings)
        audit.anchor(self.api, 'compute-2')
        records.transition(MIGRATION, 'compute-1', states.ABORTED,
                           reason='operator')
        records.create(None, INSTANCE, 'compute-2', 'compute-1')
        report = audit.verify()
        self.assertTrue(report.ok)
        self.assertEqual(2, report.unanchored)
        self.assertEqual(['entries 7..8 are not yet anchored by a TPM'],
                         report.warnings)

    def test_anchor_refusals(self):
        # An empty log (the enrollments' entries gone too).
        self.execute('DELETE FROM audit_log')
        error = self.assertRaises(exception.AuditError, audit.anchor, self.api,
                                  'compute-1')
        self.assertIn('the audit log is empty', str(error))
        self.migrate(to=states.KEY_CERTIFIED)
        self.assertRaises(exception.HostNotFound, audit.anchor, self.api,
                          'compute-9')
        first = audit.anchor(self.api, 'compute-1')
        # The same head is anchored once; asking again returns it.
        again = audit.anchor(self.api, 'compute-2')
        self.assertEqual((first.seq, first.host, first.quote_message),
                         (again.seq, again.host, again.quote_message))
        # A tampered log is never anchored.
        records.transition(MIGRATION, 'compute-2', states.TRANSFERRING)
        self.execute("UPDATE audit_log SET host = 'compute-7' WHERE seq = 2")
        error = self.assertRaises(exception.AuditError, audit.anchor, self.api,
                                  'compute-1')
        self.assertIn('the audit log fails verification, not anchoring it: '
                      'seq 2: entry 2 was changed', str(error))
        self.assertEqual([3], [row.seq for row in audit.anchors()])

    def test_quote_signs_the_head_hash(self):
        self.migrate(to=states.PEERS_ATTESTED)
        anchor = audit.anchor(self.api, 'compute-2')
        head = audit.head_entry()
        signed = evidence.parse_attestation(anchor.quote_message).extra_data
        # Under the anchor purpose's label, never the bare hash.
        self.assertEqual(purpose.qualifying_data(
            purpose.ANCHOR, bytes.fromhex(head.entry_hash)), signed)
        self.assertNotEqual(bytes.fromhex(head.entry_hash), signed)
        self.assertIn('10', json.loads(anchor.pcr_values)['sha256'])


class TestTampering(AuditTestCase):

    def test_update_of_one_entry_is_detected(self):
        self.migrate()
        audit.anchor(self.api, 'compute-1')
        self.execute("UPDATE audit_log SET details = :details WHERE seq = 3",
                     details=json.dumps({'evidence': 'sha256:' + '0' * 64}))
        report = audit.verify()
        self.assertFalse(report.ok)
        self.assertEqual([(3, audit.HASH_MISMATCH)], self.codes(report))
        self.assertIn('seq 3: entry 3 was changed: its content hashes to ',
                      str(report.first_problem))
        self.assertIn('TAMPERED: 1 problem, the first at seq 3',
                      report.summary())

    def test_deleting_a_middle_entry_is_detected(self):
        self.migrate()
        audit.anchor(self.api, 'compute-1')
        self.execute('DELETE FROM audit_log WHERE seq = 4')
        report = audit.verify()
        self.assertEqual([(4, audit.MISSING)], self.codes(report))
        self.assertEqual('seq 4: entry 4 is missing: entries were deleted',
                         str(report.first_problem))

    def test_truncation_after_an_anchor_is_detected(self):
        self.migrate()
        audit.anchor(self.api, 'compute-1')
        self.execute('DELETE FROM audit_log WHERE seq >= 8')
        report = audit.verify()
        self.assertEqual([(9, audit.TRUNCATED)], self.codes(report))
        self.assertEqual(
            'seq 9: the log ends at seq 7 but compute-1\'s TPM anchored '
            'entry 9: entries 8..9 are missing (the log was truncated)',
            str(report.first_problem))

    def test_rewritten_and_rehashed_chain_is_caught_by_the_anchor(self):
        self.migrate()
        audit.anchor(self.api, 'compute-1')
        records.create(None, INSTANCE, 'compute-2', 'compute-1')
        self.rewrite(3, {'evidence': 'sha256:' + 'ab' * 32})
        report = audit.verify()
        # The chain itself is consistent again: only the TPM's signature
        # over the old hash of entry 9 gives the rewrite away.
        self.assertEqual([(9, audit.ANCHOR_MISMATCH)], self.codes(report))
        self.assertIn('compute-1\'s TPM signed entry hash ',
                      str(report.first_problem))
        self.assertIn('the log up to seq 9 was rewritten',
                      str(report.first_problem))

    def test_forged_anchor_from_another_tpm_is_detected(self):
        self.migrate()
        audit.anchor(self.api, 'compute-1')
        self.rewrite(4, {'evidence': 'sha256:' + 'cd' * 32})
        # Re-anchor the rewritten head with another host's TPM, and claim
        # it came from compute-1.
        head = audit.head_entry()
        forged = self.api.attest('compute-2', bytes.fromhex(head.entry_hash),
                                 purpose_label=purpose.ANCHOR)
        with raw_sql.session() as session:
            anchor = session.get(models.AuditAnchor, 9)
            anchor.quote_message = forged.message
            anchor.quote_signature = forged.signature
        report = audit.verify()
        self.assertEqual([(9, audit.ANCHOR_INVALID)], self.codes(report))
        self.assertEqual(
            'seq 9: anchor of entry 9 is not a quote of compute-1\'s TPM: '
            'compute-1: signature does not verify with the enrolled AK',
            str(report.first_problem))

    def test_anchor_of_a_removed_host_fails_closed(self):
        self.migrate(to=states.PEERS_ATTESTED)
        audit.anchor(self.api, 'compute-2')
        db.host_delete('compute-2')
        report = audit.verify()
        self.assertEqual([(4, audit.ANCHOR_INVALID)], self.codes(report))
        self.assertIn('names host compute-2, which is not enrolled',
                      str(report.first_problem))

    def test_rollback_of_log_and_anchors_needs_a_recorded_head(self):
        self.migrate(to=states.TRANSFERRING)
        first = audit.anchor(self.api, 'compute-1')
        recorded = (first.seq, audit.head_entry().entry_hash)
        records.transition(MIGRATION, 'compute-1', states.MEASURED)
        second = audit.anchor(self.api, 'compute-2')
        later = (second.seq, audit.head_entry().entry_hash)
        # Both tables rolled back to the first anchor: consistent.
        self.execute('DELETE FROM audit_anchors WHERE seq = 7')
        self.execute('DELETE FROM audit_log WHERE seq = 7')
        self.assertTrue(audit.verify().ok)
        self.assertTrue(audit.verify(expected_head=recorded).ok)
        report = audit.verify(expected_head=later)
        self.assertEqual([(7, audit.TRUNCATED)], self.codes(report))
        # Rewritten and re-hashed below the recorded head, anchors gone.
        self.execute('DELETE FROM audit_anchors')
        self.rewrite(4, {'evidence': 'sha256:' + 'ef' * 32})
        self.assertTrue(audit.verify().ok)
        report = audit.verify(expected_head=recorded)
        self.assertEqual([(6, audit.HEAD_MISMATCH)], self.codes(report))
