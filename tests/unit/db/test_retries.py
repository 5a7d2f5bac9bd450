"""A busy verifier database: retried, appends serialized, clear errors.

On an SQLite file and on databases of the test process's private
PostgreSQL and MariaDB servers (tests.fixtures.databases; not mocked and
not optional), as the verifier uses them:

- 12 processes each walk 10 migration records through the 7 states of
  the forward chain at the same time (tests.fixtures.contention): no
  write fails, every record is COMMITTED once, every move is in the
  audit log once and the chain verifies.
- Another connection holds the database (SQLite: BEGIN EXCLUSIVE) or
  the audit log's lock row (the servers) while a migration moves: a
  lock held for a moment is waited out by oslo.db's retries; one held
  past the whole retry budget fails with DatabaseError, one line naming
  the database and that it was busy, and nothing is written.

Lock waits are shortened for the second kind so that a retry is what
waits the lock out: SQLite's busy timeout (the URL's timeout), the
servers' lock timeouts (PostgreSQL lock_timeout, MariaDB
innodb_lock_wait_timeout) set through the connection URL.
"""

import os
import sqlite3
import subprocess
import sys
import threading

import fixtures
import sqlalchemy as sa
from testtools import content
import testscenarios

from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova import exception
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from tests import base
from tests.fixtures import contention
from tests.fixtures import databases

load_tests = testscenarios.load_tests_apply_scenarios

SCENARIOS = [(backend, {'backend': backend})
             for backend in databases.BACKENDS]
INSTANCE = '5a0e7c2b-8d4f-4e1a-9b3c-6f2d1e0a7b84'
WORKERS = 12
RECORDS = 10
# Connection URL parameters that make a lock wait give up quickly.
SHORT_LOCK_WAITS = {
    databases.SQLITE: {'timeout': '0.2'},
    databases.POSTGRESQL: {'options': '-c lock_timeout=200'},
    databases.MYSQL: {'init_command':
                      'SET SESSION innodb_lock_wait_timeout = 1'},
}
# Seconds the short lock is held: longer than one lock wait, shorter
# than the retries below.
SHORT_HOLD = 1.5


class DatabaseTestCase(base.TestCase):

    scenarios = SCENARIOS

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(
            databases.DatabaseFixture(self.backend))
        self.url = self.database.url
        self.config.config(group='korora_database', connection=self.url)
        self.addCleanup(db.dispose)
        migration.db_sync()


class TestContention(DatabaseTestCase):

    def test_concurrent_processes_lose_no_transition(self):
        reports = contention.run(self.url, WORKERS, RECORDS)
        self.addDetail('oslo.db retries', content.text_content(
            str(sum(report['retries'] for report in reports))))
        self.assertEqual([], [failure for report in reports
                              for failure in report['failed']])
        created = [uuid for report in reports for uuid in report['created']]
        self.assertEqual(WORKERS * RECORDS, len(set(created)))

        self.assertEqual({states.COMMITTED: WORKERS * RECORDS},
                         _counts(row.state for row in records.list()))
        entries = audit.entries()
        self.assertEqual(list(range(1, len(created) * len(states.FORWARD)
                                    + 1)),
                         [entry.seq for entry in entries])
        moves = {}
        for entry in entries:
            moves.setdefault(entry.migration_uuid, []).append(
                entry.to_state)
        self.assertEqual({uuid: list(states.FORWARD) for uuid in created},
                         moves)
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        self.assertEqual(len(entries), report.entries)


class TestLockedDatabase(DatabaseTestCase):
    """A migration in MEASURED moves to VERIFIED while another connection
    holds the lock it needs."""

    def setUp(self):
        super().setUp()
        self.uuid = records.create(None, INSTANCE, 'compute-1',
                                   'compute-2').uuid
        for state in states.FORWARD[1:states.FORWARD.index(
                states.MEASURED) + 1]:
            records.transition(self.uuid, 'compute-1', state)
        self.head = db.audit_head().seq
        url = sa.engine.make_url(self.url).update_query_dict(
            SHORT_LOCK_WAITS[self.backend])
        db.dispose()
        self.config.config(group='korora_database',
                           connection=url.render_as_string(
                               hide_password=False),
                           db_retry_interval=1, db_inc_retry_interval=True,
                           db_max_retry_interval=2)
        self.locker = self.useFixture(_Locker(self.backend, self.url))

    def verify(self):
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())

    def test_a_short_lock_is_waited_out(self):
        self.config.config(group='korora_database', db_max_retries=3)
        self.locker.hold()
        release = threading.Timer(SHORT_HOLD, self.locker.release)
        release.start()
        self.addCleanup(release.cancel)
        records.transition(self.uuid, 'compute-2', states.VERIFIED)
        self.assertEqual(states.VERIFIED, records.get(self.uuid).state)
        self.assertEqual([states.VERIFIED],
                         [entry.to_state for entry in
                          db.audit_entries(after=self.head)])
        self.verify()

    def test_a_lock_past_the_retries_fails_clearly(self):
        self.config.config(group='korora_database', db_max_retries=1)
        self.locker.hold()
        error = self.assertRaises(exception.DatabaseError,
                                  records.transition, self.uuid,
                                  'compute-2', states.VERIFIED)
        self.locker.release()
        message = str(error)
        self.assertEqual([message], message.splitlines())
        self.assertTrue(message.startswith(
            'database %s is busy: still locked by another transaction '
            'after 2 tries (' % db.safe_url(
                db.CONF.korora_database.connection)), message)
        self.assertNotIn(self.database.server.password
                         if self.database.server else '\0', message)
        self.assertEqual(states.MEASURED, records.get(self.uuid).state)
        self.assertEqual(self.head, db.audit_head().seq)
        self.verify()


class TestBusyDatabaseCommand(DatabaseTestCase):
    """korora-manage on an SQLite database another process holds."""

    scenarios = [(databases.SQLITE, {'backend': databases.SQLITE})]

    def test_one_line_on_stderr(self):
        config = os.path.join(self.useFixture(fixtures.TempDir()).path,
                              'korora.conf')
        url = self.url + '?timeout=0.2'
        with open(config, 'w') as stream:
            stream.write('[korora_database]\nconnection = %s\n'
                         'db_max_retries = 0\n' % url)
        locker = self.useFixture(_Locker(self.backend, self.url))
        locker.hold()
        result = subprocess.run(
            [sys.executable, '-m', 'korora_nova.cmd.manage',
             '--config-file', config, 'migration', 'list'],
            capture_output=True, text=True, timeout=120)
        self.assertNotEqual(0, result.returncode)
        self.assertEqual(
            ['korora-manage: database %s is busy: still locked by another '
             'transaction after 1 try ((sqlite3.OperationalError) database '
             'is locked)' % url], result.stderr.splitlines())


class _Locker(fixtures.Fixture):
    """Another connection that can hold what an audited write needs:
    the whole SQLite database (BEGIN EXCLUSIVE), or the audit log's lock
    row on a server (an open transaction that updated it)."""

    def __init__(self, backend, url):
        super().__init__()
        self.backend = backend
        self.url = url
        self._held = None

    def _setUp(self):
        if self.backend == databases.SQLITE:
            self._connection = sqlite3.connect(
                sa.engine.make_url(self.url).database, isolation_level=None,
                check_same_thread=False)
        else:
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
            self.addCleanup(engine.dispose)
            self._connection = engine.connect()
        self.addCleanup(self._connection.close)
        self.addCleanup(self.release)

    def hold(self):
        if self.backend == databases.SQLITE:
            self._connection.execute('BEGIN EXCLUSIVE')
            self._held = self._connection
        else:
            self._held = self._connection.begin()
            self._connection.execute(sa.text(
                'UPDATE audit_chain_lock SET id = 1'))

    def release(self):
        held, self._held = self._held, None
        if held is not None:
            held.rollback()


def _counts(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
