"""Fault injection: one live migration through Nova's services, with
Kororā's daemons as real processes on a real RabbitMQ node, and one
fault at one moment of it per test (tests.fixtures.fault_bed).

Each test class is one fault, each of its tests one moment: right after
the verifier's answer showed the record in that state (REQUESTED and
PEERS_ATTESTED, recorded inside the destination's request call: while
the verifier, paused by the test, has recorded it; at REQUESTED it has
not yet attested the source nor had the destination certify its key,
at PEERS_ATTESTED it has done both; COMMIT: just before the source's
commit). After the fault the test waits for the outcome, recovery
included, and checks it against doc/source/admin/live-migration.rst
("When something fails", "Recovery"): the record's final state, where
Nova runs the server and that it is ACTIVE and running, that the vTPM
state exists on exactly one host (that one), and that the audit chain
verifies. The matrix and the stand-ins: doc/source/contributor/
testing.rst, "Fault injection".
"""

from tests.fixtures import fault_bed

from korora_nova.migration import states
from tests.fixtures import databases

SOURCE = fault_bed.SOURCE
DEST = fault_bed.DEST
COMMIT = fault_bed.COMMIT
MOMENTS = (states.REQUESTED, states.PEERS_ATTESTED, states.KEY_CERTIFIED,
           states.TRANSFERRING, states.MEASURED, states.VERIFIED, COMMIT)
BEFORE_TRANSFER = (states.REQUESTED, states.PEERS_ATTESTED,
                   states.KEY_CERTIFIED)
RUNNING = 1     # nova.compute.power_state.RUNNING

COMMITTED = 'committed'
ROLLED_BACK = 'rolled back'
EITHER = 'committed or rolled back'

#: fault -> {moment: outcome}: what the documentation says each cell
#: ends as (COMMITTED unless named).
EXPECTED = {
    # A manager restarted in between has forgotten the destination's
    # per-migration key: rolled back. Otherwise each step is retried.
    'kill_source_manager': {},
    # At REQUESTED its key is not certified yet: the source's call
    # certifies it after the restart.
    'kill_dest_manager': {states.PEERS_ATTESTED: ROLLED_BACK,
                          states.KEY_CERTIFIED: ROLLED_BACK},
    # The stopped compute's step never runs. A restarted source has
    # Nova reset the interrupted migration (its task state), so recovery
    # rolls back what it finds (REQUESTED, TRANSFERRING: Nova still has
    # the server there). A restarted destination leaves alone what Nova
    # is working on and serves the calls that waited for it: committed.
    # At REQUESTED the stand-in's new source serves the pre-check that
    # was on its way while Nova resets the migration: it is rolled back
    # if a recovery round sees the reset first, else it completes (and
    # Nova, whose task state was reset under it, leaves the server in
    # ERROR on the destination). Either way the vTPM state is once,
    # where Nova runs the server.
    # PEERS_ATTESTED is recorded in the same request call: the same.
    'stop_compute': {states.REQUESTED: EITHER,
                     states.PEERS_ATTESTED: EITHER,
                     states.TRANSFERRING: ROLLED_BACK},
    'restart_broker': {},
    'lock_database': {},
    'cut_database': {},
    # The transfer cannot write the destination's files: Nova rolls back.
    # After it nothing is written to that disk any more.
    'fill_disk': dict.fromkeys(BEFORE_TRANSFER + (states.TRANSFERRING,),
                               ROLLED_BACK),
}


class FaultMatrixBase(fault_bed.FaultInjection):

    def setUp(self):
        moment = self._testMethodName[len('test_at_'):].upper()
        self.STATE = moment
        super().setUp()
        self.server = self.boot_server(self.vtpm_flavor, host=SOURCE)

    def expected(self):
        return EXPECTED[self.FAULT].get(self.STATE, COMMITTED)

    def run_cell(self):
        self.live_migrate_api(self.server, host=DEST, microversion='2.34',
                              wait=False)
        self.note('live migration requested')
        record = self.wait_for_outcome(self.server)
        self.note('outcome: %s' % record.state)
        self.assertTrue(self.fired.is_set(),
                        'the fault never ran: the migration did not reach '
                        '%s' % self.STATE)
        self.assert_outcome(record, self.expected())

    def assert_outcome(self, record, outcome):
        # A copy an aborted transfer left is removed by the destination's
        # next recovery round.
        self._poll(lambda: len(self.hosts_with_state(self.server)) == 1,
                   20, 'the vTPM state on one host only')
        server = self.get_server(self.server)
        where = server['OS-EXT-SRV-ATTR:host']
        seen = (record.state, server['status'], where,
                server['OS-EXT-STS:power_state'],
                self.hosts_with_state(self.server))
        if outcome == EITHER:
            self.assertIn(record.state, (states.COMMITTED, states.ABORTED))
            self.assertEqual([where], seen[4], 'record %s (%s): %s' % (
                record.uuid, record.reason, self.history(record)))
            outcome = (COMMITTED if record.state == states.COMMITTED
                       else ROLLED_BACK)
            if outcome == COMMITTED and server['status'] == 'ERROR':
                seen = seen[:1] + ('ACTIVE',) + seen[2:]
        if outcome == COMMITTED:
            wanted = (states.COMMITTED, 'ACTIVE', DEST, RUNNING, [DEST])
        else:
            wanted = (states.ABORTED, 'ACTIVE', SOURCE, RUNNING, [SOURCE])
        self.assertEqual(wanted, seen, 'record %s (%s): %s' % (
            record.uuid, record.reason, self.history(record)))
        # Faults still being undone (a manager's restart) end first.
        self._join_background()
        report = self.audit_report()
        self.assertTrue(report.ok, report.summary())
        for name, daemon in self.daemons.items():
            self.assertTrue(daemon.running(), '%s is not running' % name)


def _matrix_class(fault, database=databases.SQLITE, moments=MOMENTS):
    suffix = '' if database == databases.SQLITE else {
        databases.POSTGRESQL: 'PostgreSQL', databases.MYSQL: 'MariaDB'}[
            database]
    name = 'Test%s%s' % (''.join(part.title() for part in fault.split('_')),
                         suffix)
    body = {'FAULT': fault, 'DATABASE': database,
            '__doc__': 'Fault %s at each moment (%s).' % (fault, database)}
    for moment in moments:
        body['test_at_%s' % moment.lower()] = (
            lambda self: self.run_cell())
    return type(name, (FaultMatrixBase,), body)


for _fault in EXPECTED:
    _class = _matrix_class(_fault)
    globals()[_class.__name__] = _class
for _database in (databases.POSTGRESQL, databases.MYSQL):
    for _fault in ('lock_database', 'cut_database'):
        _class = _matrix_class(_fault, _database)
        globals()[_class.__name__] = _class
del _fault, _database, _class


class TestCleanMigration(fault_bed.FaultInjection):
    """No fault: the bed itself migrates and commits (SQLite; the
    subclasses on the database servers)."""

    FAULT = 'none'

    def test_commits(self):
        server = self.boot_server(self.vtpm_flavor, host=SOURCE)
        self.live_migrate_api(server, host=DEST, microversion='2.34',
                              wait=False)
        record = self.wait_for_outcome(server)
        self.assertEqual(list(states.FORWARD), self.history(record))
        self.server = server
        FaultMatrixBase.assert_outcome(self, record, COMMITTED)


class TestCleanMigrationPostgreSQL(TestCleanMigration):
    DATABASE = databases.POSTGRESQL


class TestCleanMigrationMariaDB(TestCleanMigration):
    DATABASE = databases.MYSQL
