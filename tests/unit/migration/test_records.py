"""Migration records and their audit entries, on a real SQLite database."""

import json
import logging
import threading

from alembic import autogenerate
from alembic import migration as alembic_migration
import fixtures
import sqlalchemy as sa

from korora_nova.db import api as db
from korora_nova.db import migration as db_migration
from korora_nova.db import models
from korora_nova.db import audit_log
from korora_nova import exception
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from tests import base
from korora_nova.demo import services

INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'


class RecordsTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(
            services.VerifierDatabaseFixture())
        self.log = self.useFixture(fixtures.FakeLogger(
            name='korora_nova.migration', level=logging.INFO))

    def create(self, migration_uuid=MIGRATION):
        return records.create(migration_uuid, INSTANCE, 'compute-1',
                              'compute-2')

    def audit_rows(self):
        with db.get_engine().connect() as connection:
            return connection.execute(sa.text(
                'SELECT seq, migration_uuid, host, step, from_state, '
                'to_state, details FROM audit_log ORDER BY seq')).all()

    def walk_to(self, migration_uuid, target):
        """Move a migration along the forward chain up to target."""
        path = states.FORWARD[1:states.FORWARD.index(target) + 1]
        for state in path:
            records.transition(migration_uuid, 'compute-1', state)


class TestSchema(RecordsTestCase):

    def test_models_and_migrations_agree(self):
        with db.get_engine().connect() as connection:
            diff = autogenerate.compare_metadata(
                alembic_migration.MigrationContext.configure(connection),
                models.BASE.metadata)
        self.assertEqual([], diff)

    def test_schema_is_at_the_head_revision(self):
        self.assertEqual(db_migration.head_version(),
                         db_migration.db_version())


class TestLifecycle(RecordsTestCase):

    def test_legal_path_to_committed(self):
        record = self.create()
        self.assertEqual(states.REQUESTED, record.state)
        for state in states.FORWARD[1:]:
            record = records.transition(
                MIGRATION, 'compute-2', state,
                details={'quote': b'evidence of ' + state.encode()})
            self.assertEqual(state, record.state)
        self.assertEqual(states.COMMITTED, records.get(MIGRATION).state)
        rows = self.audit_rows()
        self.assertEqual(list(range(1, len(states.FORWARD) + 1)),
                         [row.seq for row in rows])
        self.assertEqual([(None, states.REQUESTED)] + list(
            zip(states.FORWARD, states.FORWARD[1:])),
            [(row.from_state, row.to_state) for row in rows])
        self.assertEqual(['request', 'attest-peers', 'certify-key',
                          'transfer', 'measure', 'verify-arrival',
                          'commit'], [row.step for row in rows])
        self.assertEqual(
            [(states.KEY_CERTIFIED, states.TRANSFERRING),
             (states.TRANSFERRING, states.MEASURED),
             (states.MEASURED, states.VERIFIED)],
            [(row.from_state, row.to_state) for row in rows[3:6]])
        # Evidence is named by its digest, never copied into the log.
        details = json.loads(rows[-1].details)
        self.assertEqual(audit_log.digest(b'evidence of COMMITTED'),
                         details['quote'])
        self.assertEqual({'instance_uuid': INSTANCE,
                          'source_host': 'compute-1',
                          'dest_host': 'compute-2'},
                         json.loads(rows[0].details))
        self.assertIn('%s: PEERS_ATTESTED -> KEY_CERTIFIED by compute-2 '
                      '(audit seq 3)' % MIGRATION, self.log.output)
        self.assertIn('%s: TRANSFERRING -> MEASURED by compute-2 '
                      '(audit seq 5)' % MIGRATION, self.log.output)
        self.assertTrue(audit.verify().ok)

    def test_abort_keeps_the_reason(self):
        self.create()
        self.walk_to(MIGRATION, states.MEASURED)
        record = records.transition(MIGRATION, 'compute-1', states.ABORTED,
                                    reason='destination is untrusted')
        self.assertEqual(states.ABORTED, record.state)
        self.assertEqual('destination is untrusted', record.reason)
        last = self.audit_rows()[-1]
        self.assertEqual(('abort', states.MEASURED, states.ABORTED),
                         (last.step, last.from_state, last.to_state))
        self.assertEqual('destination is untrusted',
                         json.loads(last.details)['reason'])

    def test_quarantine_on_arrival(self):
        """Verification on arrival fails before or after the source
        measured: either way the instance is held."""
        for state in (states.TRANSFERRING, states.MEASURED):
            migration_uuid = records.create(None, INSTANCE, 'compute-1',
                                            'compute-2').uuid
            self.walk_to(migration_uuid, state)
            record = records.transition(
                migration_uuid, 'compute-2', states.QUARANTINED,
                reason='vTPM state does not match the manifest')
            self.assertEqual(states.QUARANTINED, record.state)
            self.assertEqual('vTPM state does not match the manifest',
                             record.reason)
            last = records.history(migration_uuid)[-1]
            self.assertEqual(('quarantine', state, states.QUARANTINED),
                             (last.step, last.from_state, last.to_state))
            self.assertRaises(exception.IllegalTransition, records.transition,
                              migration_uuid, 'compute-2', states.VERIFIED)
            self.assertEqual(states.QUARANTINED,
                             records.get(migration_uuid).state)

    def test_no_quarantine_before_the_transfer_or_after_verification(self):
        for state in (states.REQUESTED, states.KEY_CERTIFIED,
                      states.VERIFIED):
            migration_uuid = records.create(None, INSTANCE, 'compute-1',
                                            'compute-2').uuid
            if state != states.REQUESTED:
                self.walk_to(migration_uuid, state)
            before = records.history(migration_uuid)
            error = self.assertRaises(
                exception.IllegalTransition, records.transition,
                migration_uuid, 'compute-2', states.QUARANTINED,
                reason='should not stick')
            self.assertIn('%s -> QUARANTINED is not allowed' % state,
                          str(error))
            record = records.get(migration_uuid)
            self.assertEqual((state, None), (record.state, record.reason))
            self.assertEqual([entry.seq for entry in before],
                             [entry.seq for entry in
                              records.history(migration_uuid)])

    def test_generated_uuid_and_duplicates(self):
        record = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        self.assertEqual(36, len(record.uuid))
        error = self.assertRaises(exception.MigrationExists, records.create,
                                  record.uuid, INSTANCE, 'compute-1',
                                  'compute-3')
        self.assertIn('already recorded', str(error))
        self.assertEqual(1, len(self.audit_rows()))

    def test_unknown_migration(self):
        self.assertRaises(exception.MigrationNotFound, records.get, MIGRATION)
        self.assertRaises(exception.MigrationNotFound, records.transition,
                          MIGRATION, 'compute-1', states.PEERS_ATTESTED)
        self.assertEqual([], self.audit_rows())

    def test_list_orders_changes_within_one_second(self):
        # Timestamps keep whole seconds; the order must not depend on them.
        first = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        second = records.create(None, INSTANCE, 'compute-1', 'compute-3')
        self.assertEqual([second.uuid, first.uuid],
                         [row.uuid for row in records.list()])
        records.transition(first.uuid, 'compute-2', states.ABORTED)
        self.assertEqual([first.uuid, second.uuid],
                         [row.uuid for row in records.list()])

    def test_list_and_history(self):
        first = self.create()
        second = records.create(None, INSTANCE, 'compute-2', 'compute-1')
        records.transition(second.uuid, 'compute-2', states.ABORTED)
        self.assertEqual({first.uuid, second.uuid},
                         {row.uuid for row in records.list()})
        self.assertEqual(1, len(records.list(limit=1)))
        history = records.history(second.uuid)
        self.assertEqual([states.REQUESTED, states.ABORTED],
                         [entry.to_state for entry in history])


class TestManifest(RecordsTestCase):
    """The source's signed manifest and counter value ride on the
    transition that records them: with it or not at all."""

    MANIFEST = json.dumps({'manifest': {'counter': 2 ** 40 + 7,
                                        'migration_uuid': MIGRATION},
                           'signature': 'ab' * 256}, sort_keys=True)
    COUNTER = 2 ** 40 + 7      # beyond 32 bits: a BIGINT column

    def evidence(self):
        record = records.get(MIGRATION)
        return record.state, record.manifest, record.source_counter

    def test_stored_with_the_transition(self):
        self.create()
        self.walk_to(MIGRATION, states.TRANSFERRING)
        self.assertEqual((states.TRANSFERRING, None, None), self.evidence())
        record = records.transition(
            MIGRATION, 'compute-1', states.MEASURED,
            details={'manifest': self.MANIFEST.encode()},
            manifest=self.MANIFEST, source_counter=self.COUNTER)
        self.assertEqual((states.MEASURED, self.MANIFEST, self.COUNTER),
                         (record.state, record.manifest,
                          record.source_counter))
        # As the next service reads it, from the database.
        db.dispose()
        self.assertEqual((states.MEASURED, self.MANIFEST, self.COUNTER),
                         self.evidence())
        last = self.audit_rows()[-1]
        self.assertEqual((5, 'measure', states.TRANSFERRING,
                          states.MEASURED),
                         (last.seq, last.step, last.from_state,
                          last.to_state))
        # The log names the manifest by its digest; the record keeps it.
        self.assertEqual(audit_log.digest(self.MANIFEST.encode()),
                         json.loads(last.details)['manifest'])
        # Later steps that do not carry them leave them as they are.
        records.transition(MIGRATION, 'compute-2', states.VERIFIED)
        records.transition(MIGRATION, 'compute-1', states.COMMITTED)
        self.assertEqual((states.COMMITTED, self.MANIFEST, self.COUNTER),
                         self.evidence())
        self.assertTrue(audit.verify().ok)

    def test_refused_transition_stores_neither(self):
        self.create()
        self.walk_to(MIGRATION, states.KEY_CERTIFIED)
        before = self.audit_rows()
        updated = records.get(MIGRATION).updated_at
        # Measuring before the transfer is refused...
        error = self.assertRaises(
            exception.IllegalTransition, records.transition, MIGRATION,
            'compute-1', states.MEASURED, manifest=self.MANIFEST,
            source_counter=self.COUNTER)
        self.assertIn('KEY_CERTIFIED -> MEASURED is not allowed',
                      str(error))
        self.assertEqual((states.KEY_CERTIFIED, None, None),
                         self.evidence())
        self.assertEqual(updated, records.get(MIGRATION).updated_at)
        self.assertEqual(before, self.audit_rows())
        # ...and so is a move from a state the migration has left.
        records.transition(MIGRATION, 'compute-2', states.TRANSFERRING)
        before = self.audit_rows()
        updated = records.get(MIGRATION).updated_at
        self.assertRaises(
            exception.ConcurrentTransition, records.transition, MIGRATION,
            'compute-1', states.MEASURED, expected=states.KEY_CERTIFIED,
            manifest=self.MANIFEST, source_counter=self.COUNTER)
        self.assertEqual((states.TRANSFERRING, None, None), self.evidence())
        self.assertEqual(updated, records.get(MIGRATION).updated_at)
        self.assertEqual(before, self.audit_rows())

    def test_lost_race_stores_neither(self):
        """Another service aborts the migration between this one's read
        and its UPDATE: the conditional UPDATE that would store them
        matches nothing."""
        self.create()
        self.walk_to(MIGRATION, states.TRANSFERRING)
        original_check = states.check
        raced = []

        def check_then_lose_the_race(migration_uuid, old, new):
            original_check(migration_uuid, old, new)
            if not raced:
                raced.append(True)
                records.transition(MIGRATION, 'compute-2', states.ABORTED,
                                   reason='operator')

        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.migration.states.check', check_then_lose_the_race))
        error = self.assertRaises(
            exception.ConcurrentTransition, records.transition, MIGRATION,
            'compute-1', states.MEASURED, manifest=self.MANIFEST,
            source_counter=self.COUNTER)
        self.assertIn('TRANSFERRING -> MEASURED is not allowed (it is '
                      'ABORTED now', str(error))
        self.assertEqual((states.ABORTED, None, None), self.evidence())
        self.assertEqual(
            [(states.TRANSFERRING, states.ABORTED)],
            [(row.from_state, row.to_state)
             for row in self.audit_rows()[4:]])

    def test_not_stored_when_the_audit_entry_fails(self):
        """The UPDATE that stores them and the audit entry are one
        transaction: an entry that cannot be written undoes the UPDATE."""
        self.create()
        self.walk_to(MIGRATION, states.TRANSFERRING)
        before = self.audit_rows()
        updated = records.get(MIGRATION).updated_at
        self.assertRaises(
            exception.AuditError, records.transition, MIGRATION, 'compute-1',
            states.MEASURED, details={'big': 'x' * audit_log.MAX_DETAILS},
            manifest=self.MANIFEST, source_counter=self.COUNTER)
        self.assertEqual((states.TRANSFERRING, None, None), self.evidence())
        self.assertEqual(updated, records.get(MIGRATION).updated_at)
        self.assertEqual(before, self.audit_rows())
        # Nothing is left half-done: the same step succeeds afterwards.
        records.transition(MIGRATION, 'compute-1', states.MEASURED,
                           manifest=self.MANIFEST,
                           source_counter=self.COUNTER)
        self.assertEqual((states.MEASURED, self.MANIFEST, self.COUNTER),
                         self.evidence())


class TestIllegalTransitions(RecordsTestCase):

    def test_refused_logged_and_nothing_written(self):
        self.create()
        self.walk_to(MIGRATION, states.VERIFIED)
        before = self.audit_rows()
        updated = records.get(MIGRATION).updated_at
        for target in (states.REQUESTED, states.MEASURED,
                       states.QUARANTINED, states.VERIFIED, 'TELEPORTED'):
            error = self.assertRaises(exception.IllegalTransition,
                                      records.transition, MIGRATION,
                                      'compute-9', target,
                                      details={'evil': True},
                                      reason='should not stick')
            self.assertIn('migration %s: VERIFIED -> %s is not allowed'
                          % (MIGRATION, target), str(error))
            self.assertIn('refused by compute-9: %s' % error,
                          self.log.output)
        record = records.get(MIGRATION)
        self.assertEqual(states.VERIFIED, record.state)
        self.assertIsNone(record.reason)
        self.assertEqual(updated, record.updated_at)
        self.assertEqual(before, self.audit_rows())

    def test_nothing_leaves_a_final_state(self):
        self.create()
        self.walk_to(MIGRATION, states.COMMITTED)
        for target in states.ALL:
            self.assertRaises(exception.IllegalTransition, records.transition,
                              MIGRATION, 'compute-1', target)
        self.assertEqual(len(states.FORWARD), len(self.audit_rows()))

    def test_stale_expectation_is_refused(self):
        self.create()
        records.transition(MIGRATION, 'compute-1', states.PEERS_ATTESTED)
        error = self.assertRaises(
            exception.ConcurrentTransition, records.transition, MIGRATION,
            'compute-2', states.PEERS_ATTESTED, expected=states.REQUESTED)
        self.assertIn('it is PEERS_ATTESTED now', str(error))
        self.assertEqual(2, len(self.audit_rows()))


class TestConcurrency(RecordsTestCase):

    def test_conditional_update_refuses_a_stale_read(self):
        """Another service moves the migration between this one's read
        and its UPDATE: the UPDATE matches nothing and nothing is
        written."""
        self.create()
        original_check = states.check
        raced = []

        def check_then_lose_the_race(migration_uuid, old, new):
            original_check(migration_uuid, old, new)
            if not raced:
                raced.append(True)
                # A second service, on its own connection, wins now.
                records.transition(MIGRATION, 'compute-2', states.ABORTED,
                                   reason='operator')

        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.migration.states.check', check_then_lose_the_race))
        error = self.assertRaises(exception.ConcurrentTransition,
                                  records.transition, MIGRATION,
                                  'compute-1', states.PEERS_ATTESTED)
        self.assertEqual(
            'migration %s: REQUESTED -> PEERS_ATTESTED is not allowed (it '
            'is ABORTED now: another service moved it first)' % MIGRATION,
            str(error))
        self.assertIn('refused by compute-1', self.log.output)
        self.assertEqual(states.ABORTED, records.get(MIGRATION).state)
        self.assertEqual([states.REQUESTED, states.ABORTED],
                         [row.to_state for row in self.audit_rows()])
        self.assertTrue(audit.verify().ok)

    def test_threads_racing_from_the_same_state_one_wins(self):
        self.create()
        contenders = 8
        barrier = threading.Barrier(contenders)
        won, lost, failed = [], [], []
        targets = [states.PEERS_ATTESTED, states.ABORTED] * (contenders // 2)

        def contend(number, target):
            barrier.wait()
            try:
                records.transition(MIGRATION, 'compute-%d' % number,
                                   target, expected=states.REQUESTED)
            except exception.IllegalTransition:
                lost.append(number)
            except Exception as error:     # reported below
                failed.append(error)
            else:
                won.append(number)

        threads = [threading.Thread(target=contend, args=(n, target))
                   for n, target in enumerate(targets)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual([], failed)
        self.assertEqual(1, len(won), won)
        self.assertEqual(contenders - 1, len(lost))
        rows = self.audit_rows()
        self.assertEqual(2, len(rows))
        self.assertEqual('compute-%d' % won[0], rows[1].host)
        self.assertEqual(rows[1].to_state, records.get(MIGRATION).state)
        self.assertTrue(audit.verify().ok)

    def test_concurrent_appends_of_different_migrations_chain(self):
        uuids = [records.create(None, INSTANCE, 'compute-1',
                                'compute-2').uuid for _ in range(6)]
        barrier = threading.Barrier(len(uuids))
        failed = []

        def walk(migration_uuid):
            barrier.wait()
            try:
                self.walk_to(migration_uuid, states.COMMITTED)
            except Exception as error:     # reported below
                failed.append(error)

        threads = [threading.Thread(target=walk, args=(uuid,))
                   for uuid in uuids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        self.assertEqual([], failed)
        rows = self.audit_rows()
        self.assertEqual(list(range(1, len(uuids) * len(states.FORWARD) + 1)),
                         [row.seq for row in rows])
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())


class TestRestart(RecordsTestCase):

    def test_in_flight_after_a_restart(self):
        done = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        self.walk_to(done.uuid, states.COMMITTED)
        aborted = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        records.transition(aborted.uuid, 'compute-1', states.ABORTED)
        held = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        self.walk_to(held.uuid, states.TRANSFERRING)
        records.transition(held.uuid, 'compute-2', states.QUARANTINED)
        early = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        self.walk_to(early.uuid, states.KEY_CERTIFIED)
        moving = records.create(None, INSTANCE, 'compute-2', 'compute-3')
        self.walk_to(moving.uuid, states.TRANSFERRING)
        measured = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        self.walk_to(measured.uuid, states.MEASURED)
        verified = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        self.walk_to(verified.uuid, states.VERIFIED)
        # The service dies: its engines and everything in memory go.
        db.dispose()
        found = records.in_flight()
        self.assertEqual({early.uuid: states.KEY_CERTIFIED,
                          moving.uuid: states.TRANSFERRING,
                          measured.uuid: states.MEASURED,
                          verified.uuid: states.VERIFIED},
                         {row.uuid: row.state for row in found})
        self.assertEqual({early.uuid: states.ROLL_BACK,
                          moving.uuid: states.FINISH,
                          measured.uuid: states.VERIFY,
                          verified.uuid: states.COMMIT},
                         {row.uuid: states.RESUME[row.state]
                          for row in found})
        # The restarted service rolls back the one that never left the
        # source; the instance of the one in transfer is on the
        # destination: the source measures it, the destination verifies
        # it, the source commits. The measured one fails verification on
        # arrival and is held; the verified one is committed.
        records.transition(early.uuid, 'compute-1', states.ABORTED,
                           reason='restarted before the transfer')
        records.transition(moving.uuid, 'compute-2', states.MEASURED)
        records.transition(moving.uuid, 'compute-3', states.VERIFIED)
        records.transition(moving.uuid, 'compute-2', states.COMMITTED)
        records.transition(measured.uuid, 'compute-2', states.QUARANTINED,
                           reason='vTPM state does not match the manifest')
        records.transition(verified.uuid, 'compute-1', states.COMMITTED)
        self.assertEqual([], records.in_flight())
        self.assertEqual(
            [states.REQUESTED, states.PEERS_ATTESTED, states.KEY_CERTIFIED,
             states.TRANSFERRING, states.MEASURED, states.VERIFIED,
             states.COMMITTED],
            [entry.to_state for entry in records.history(moving.uuid)])
        self.assertTrue(audit.verify().ok)
