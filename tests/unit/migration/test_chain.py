"""The audit chain alone (no anchors), on a real SQLite database: what
verify reports for each kind of change, and that it never crashes on
what it reads."""

import json

import fixtures as test_fixtures
import sqlalchemy as sa

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

INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'


class TestChain(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.VerifierDatabaseFixture())
        self.uuid = records.create(None, INSTANCE, 'compute-1',
                                   'compute-2').uuid
        for state in states.FORWARD[1:5]:
            records.transition(self.uuid, 'compute-2', state,
                               details={'evidence': state.encode(),
                                        'checks': ['signature', 'nonce']})
        # seq 1..5

    def execute(self, statement, **parameters):
        with db.get_engine().begin() as connection:
            connection.execute(sa.text(statement), parameters)

    def codes(self):
        report = audit.verify()
        self.assertFalse(report.ok)
        return [(p.seq, p.code) for p in report.problems]

    def test_hashing_is_deterministic_and_covers_every_field(self):
        entry = audit.entries()[2]
        self.assertEqual(entry.entry_hash, audit_log.hash_of(entry))
        for field, value in (('seq', 9), ('host', 'compute-9'),
                             ('step', 'commit'), ('from_state', None),
                             ('to_state', states.COMMITTED),
                             ('migration_uuid', None), ('details', '{}'),
                             ('created_at', entry.created_at.replace(
                                 year=2001)),
                             ('prev_hash', audit_log.GENESIS)):
            original = getattr(entry, field)
            setattr(entry, field, value)
            self.assertNotEqual(entry.entry_hash, audit_log.hash_of(entry),
                                field)
            setattr(entry, field, original)

    def test_first_entries_deleted(self):
        self.execute('DELETE FROM audit_log WHERE seq <= 2')
        self.assertEqual([(1, audit.MISSING)], self.codes())
        self.assertEqual('seq 1: entries 1..2 are missing: entries were '
                         'deleted', str(audit.verify().first_problem))

    def test_entry_inserted_at_the_end_without_the_link(self):
        with raw_sql.session() as session:
            session.add(models.AuditEntry(
                seq=6, migration_uuid=self.uuid, host='compute-2',
                step='commit', from_state=states.TRANSFERRING,
                to_state=states.COMMITTED, details='{}',
                created_at=audit_log.now(), prev_hash=audit_log.GENESIS,
                entry_hash='0' * 64))
        self.assertEqual([(6, audit.BROKEN_LINK), (6, audit.HASH_MISMATCH)],
                         self.codes())

    def test_entry_swapped_for_a_correctly_hashed_fake(self):
        """Rewritten and re-hashed, but only that entry: the next one's
        link gives it away."""
        with raw_sql.session() as session:
            entry = session.get(models.AuditEntry, 3)
            entry.host = 'compute-9'
            entry.entry_hash = audit_log.hash_of(entry)
        self.assertEqual([(4, audit.BROKEN_LINK)], self.codes())

    def test_garbage_in_the_hash_columns(self):
        self.execute("UPDATE audit_log SET prev_hash = 'zz', "
                     "entry_hash = :odd WHERE seq = 2", odd='\u00e9' * 64)
        self.assertEqual([(2, audit.BROKEN_LINK), (2, audit.MALFORMED),
                          (3, audit.BROKEN_LINK)], self.codes())

    def test_details_changed_to_equivalent_json_is_a_change(self):
        entry = audit.entries()[1]
        spaced = json.dumps(json.loads(entry.details), indent=1)
        self.execute('UPDATE audit_log SET details = :d WHERE seq = 2',
                     d=spaced)
        self.assertEqual([(2, audit.HASH_MISMATCH)], self.codes())

    def test_details_are_checked_before_anything_is_written(self):
        self.assertRaises(exception.AuditError, records.transition, self.uuid,
                          'compute-2', states.VERIFIED,
                          details={'not json': object()})
        self.assertRaises(exception.AuditError, records.transition, self.uuid,
                          'compute-2', states.VERIFIED,
                          details={'big': 'x' * audit_log.MAX_DETAILS})
        self.assertEqual(states.MEASURED, records.get(self.uuid).state)
        self.assertEqual(5, len(audit.entries()))

    def test_expected_head(self):
        head = audit.head_entry()
        self.assertTrue(audit.verify(expected_head=(5, head.entry_hash)).ok)
        report = audit.verify(expected_head=(5, 'ab' * 32))
        self.assertEqual([(5, audit.HEAD_MISMATCH)],
                         [(p.seq, p.code) for p in report.problems])
        report = audit.verify(expected_head=(9, head.entry_hash))
        self.assertEqual([(9, audit.TRUNCATED)],
                         [(p.seq, p.code) for p in report.problems])

    def test_no_append_after_a_malformed_head(self):
        self.execute("UPDATE audit_log SET entry_hash = 'zz' WHERE seq = 5")
        error = self.assertRaises(exception.AuditError, records.transition,
                                  self.uuid, 'compute-2', states.VERIFIED)
        self.assertIn('the audit log\'s head (seq 5) has a malformed hash',
                      str(error))
        self.assertEqual(states.MEASURED, records.get(self.uuid).state)

    def test_walk_in_small_batches(self):
        self.useFixture(test_fixtures.MockPatch(
            'korora_nova.migration.audit._BATCH', 2))
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        self.assertEqual((5, 1, 5), (report.entries, report.first_seq,
                                     report.last_seq))
        self.execute('DELETE FROM audit_log WHERE seq = 3')
        self.assertEqual([(3, audit.MISSING)], self.codes())
