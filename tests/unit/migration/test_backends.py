"""Migration records and the audit chain on SQLite, PostgreSQL and
MariaDB.

The hashes must survive each backend's round trip (MariaDB's DATETIME
keeps whole seconds), and concurrent appends must still form one chain:
each takes the audit log's lock row first (korora_nova.db.api), so they
run one at a time on every backend.
"""

import threading

import testscenarios

from korora_nova.db import api as db
from korora_nova.db import migration as db_migration
from korora_nova import exception
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from tests import base
from tests.fixtures import databases

load_tests = testscenarios.load_tests_apply_scenarios

INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
JOIN_TIMEOUT = 120


class TestBackends(base.TestCase):

    scenarios = [(backend, {'backend': backend})
                 for backend in databases.BACKENDS]

    def setUp(self):
        super().setUp()
        database = self.useFixture(databases.DatabaseFixture(self.backend))
        self.config.config(group='korora_database', connection=database.url)
        self.addCleanup(db.dispose)
        db_migration.db_sync()

    def run_threads(self, target, arguments):
        barrier = threading.Barrier(len(arguments))
        failed = []

        def run(*args):
            barrier.wait()
            try:
                target(*args)
            except Exception as error:     # reported below
                failed.append(error)

        threads = [threading.Thread(target=run, args=args)
                   for args in arguments]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        self.assertEqual([], failed)

    def walk(self, migration_uuid):
        for state in states.FORWARD[1:]:
            records.transition(migration_uuid, 'compute-2', state,
                               details={'evidence': state.encode()})

    def test_hashes_survive_the_round_trip_and_tampering_shows(self):
        record = records.create(None, INSTANCE, 'compute-1', 'compute-2')
        self.walk(record.uuid)
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        self.assertEqual(len(states.FORWARD), report.entries)
        with db.get_engine().begin() as connection:
            connection.exec_driver_sql(
                "UPDATE audit_log SET host = 'compute-9' WHERE seq = 4")
        self.assertEqual([(4, audit.HASH_MISMATCH)],
                         [(p.seq, p.code) for p in audit.verify().problems])

    def test_concurrent_appends_form_one_chain(self):
        uuids = [records.create(None, INSTANCE, 'compute-1',
                                'compute-2').uuid for _ in range(6)]
        self.run_threads(self.walk, [(uuid,) for uuid in uuids])
        count = len(uuids) * len(states.FORWARD)
        self.assertEqual(list(range(1, count + 1)),
                         [entry.seq for entry in audit.entries()])
        self.assertEqual({states.COMMITTED},
                         {row.state for row in records.list()})
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())

    def test_one_of_many_racing_services_wins(self):
        migration_uuid = records.create(None, INSTANCE, 'compute-1',
                                        'compute-2').uuid
        won, lost = [], []

        def contend(number):
            try:
                records.transition(migration_uuid, 'compute-%d' % number,
                                   states.PEERS_ATTESTED)
            except exception.IllegalTransition:
                lost.append(number)
            else:
                won.append(number)

        self.run_threads(contend, [(n,) for n in range(8)])
        self.assertEqual((1, 7), (len(won), len(lost)))
        history = records.history(migration_uuid)
        self.assertEqual(['compute-1', 'compute-%d' % won[0]],
                         [entry.host for entry in history])
        self.assertTrue(audit.verify().ok)
