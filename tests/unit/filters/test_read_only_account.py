"""TrustedVTPMFilter through a read-only database account.

nova-scheduler holds read-only credentials to the verifier's database
(doc/source/install/manual.rst, "Database accounts per host role"). Each
test writes a fleet of verdicts through the verifier's read-write URL,
then points [korora_database] connection at an account that can only
read: SQLite opened read-only (``mode=ro``), or on the test process's
private PostgreSQL and MariaDB servers (tests.fixtures.databases) a
real role with nothing but SELECT on host_trust, granted with the
statements of the manual. The filter must decide exactly as through the
read-write URL; a write through the same account fails, so a filter
that wrote would refuse every host.
"""

# Nova's unit test package first, as in test_trusted_vtpm.
from nova.tests.unit.scheduler import fakes  # noqa: F401

import secrets

from oslo_db import exception as db_exception
import testscenarios

from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova import exception
from tests.fixtures import databases
from tests.unit.filters import test_trusted_vtpm as base

load_tests = testscenarios.load_tests_apply_scenarios

# The manual's statements for nova-scheduler's account.
SCHEDULER_GRANTS = {
    databases.POSTGRESQL: (
        "CREATE ROLE {role} LOGIN PASSWORD '{password}'",
        'GRANT CONNECT ON DATABASE {database} TO {role}',
        'GRANT USAGE ON SCHEMA public TO {role}',
        'GRANT SELECT ON TABLE host_trust TO {role}',
    ),
    databases.MYSQL: (
        "CREATE USER '{role}'@'127.0.0.1' IDENTIFIED BY '{password}'",
        "GRANT SELECT ON {database}.host_trust TO '{role}'@'127.0.0.1'",
    ),
}
# What each backend answers a verdict's write through that account (its
# first statement updates the audit log's lock row).
WRITE_REFUSED = {
    databases.SQLITE: 'attempt to write a readonly database',
    databases.POSTGRESQL: 'permission denied for table audit_chain_lock',
    databases.MYSQL: "UPDATE command denied to user 'scheduler_",
}


def sqlite_read_only(url):
    """The SQLite URL of the same file, opened read-only."""
    return 'sqlite:///file:%s?mode=ro&uri=true' % url[len('sqlite:///'):]


class Account:
    """A login role on a database of the shared PostgreSQL or MariaDB
    server, with the privileges the statements (by backend) grant it."""

    def __init__(self, fixture, prefix, statements):
        self.fixture = fixture
        self.role = '%s_%s' % (prefix, fixture.name)
        self.password = secrets.token_hex(12)
        self.statements = statements[fixture.backend]

    def create(self, test):
        """Create the role; its URL. Dropped at the test's cleanup."""
        server = self.fixture.server
        names = {'role': self.role, 'password': self.password,
                 'database': self.fixture.name}
        statements = [s.format(**names) for s in self.statements]
        if self.fixture.backend == databases.POSTGRESQL:
            # Table grants are made in the database itself.
            self._in_database(statements)
            test.addCleanup(self._in_database, [
                'DROP OWNED BY %s' % self.role,
                'REVOKE CONNECT ON DATABASE %s FROM %s'
                % (self.fixture.name, self.role),
                'DROP ROLE %s' % self.role])
            return 'postgresql+psycopg2://%s:%s@127.0.0.1:%d/%s' % (
                self.role, self.password, server.port, self.fixture.name)
        server.admin(*statements)
        test.addCleanup(server.admin,
                        "DROP USER '%s'@'127.0.0.1'" % self.role)
        return 'mysql+pymysql://%s:%s@127.0.0.1:%d/%s?charset=%s' % (
            self.role, self.password, server.port, self.fixture.name,
            server.charset)

    def _in_database(self, statements):
        connection = self.fixture.server._connect_admin(self.fixture.name)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()


class TestReadOnlyAccount(base.TrustedVTPMFilterTestCase):

    scenarios = [(backend, {'backend': backend})
                 for backend in databases.BACKENDS]

    def setUp(self):
        super().setUp()
        database = self.useFixture(databases.DatabaseFixture(self.backend))
        self.addCleanup(db.dispose)
        self.read_write = database.url
        self.config.config(group='korora_database',
                           connection=self.read_write)
        migration.db_sync()
        self.hosts = self.fleet()
        if self.backend == databases.SQLITE:
            self.read_only = sqlite_read_only(self.read_write)
        else:
            self.read_only = Account(database, 'scheduler',
                                     SCHEDULER_GRANTS).create(self)

    def use(self, url):
        db.dispose()
        self.config.config(group='korora_database', connection=url)

    def decide(self):
        return base.names(self.filter_all(self.hosts, base.vtpm_spec()))

    def test_the_same_hosts_pass_as_through_the_read_write_url(self):
        through_read_write = self.decide()
        self.use(self.read_only)
        self.logger.reset_output()

        self.assertEqual(['compute-1'], through_read_write)
        self.assertEqual(through_read_write, self.decide())
        self.assertRefused('compute-2', 'untrusted: PCR sha256:10 = %s: '
                           'not allowed by policy %s)'
                           % (base.PCR_VALUE, base.POLICY))
        self.assertRefused('compute-3', 'no verdict: not enrolled?)')
        self.assertRefused('compute-4', 'last verdict ')
        self.assertNotIn('cannot be read', self.logger.output)

    def test_a_new_verdict_is_seen_through_the_read_only_account(self):
        self.use(self.read_only)
        self.assertEqual(['compute-1'], self.decide())
        self.use(self.read_write)
        self.record(base.trusted('compute-2'))
        self.use(self.read_only)

        self.assertEqual(['compute-1', 'compute-2'], self.decide())

    def test_the_account_cannot_write(self):
        self.use(self.read_only)

        error = self.assertRaises(
            (exception.DatabaseError, db_exception.DBError), db.record_verdict,
            'compute-3', base.trusted('compute-3'))
        self.assertIn(WRITE_REFUSED[self.backend], str(error))
        self.assertEqual(['compute-1'], self.decide())
