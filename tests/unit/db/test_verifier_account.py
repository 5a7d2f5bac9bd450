"""The verifier's database account, with the manual's grants.

doc/source/install/manual.rst ("Database accounts per host role") gives
korora-verifier an account that reads and writes rows but owns no
schema. On the test process's private PostgreSQL and MariaDB servers
(tests.fixtures.databases) the schema's owner runs db_sync, a real
role gets exactly the manual's statements, and the verifier's work runs
through it: enrollment, policies, verdicts, scheduled claims, migration
records with their audit entries. Changing the schema through it fails.
"""

from oslo_db import exception as db_exception
import sqlalchemy as sa
import testscenarios

from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova import exception
from korora_nova.migration import records
from korora_nova.migration import states
from tests import base
from tests.fixtures import databases
from tests.unit.db import test_api
from tests.unit.filters import test_read_only_account

load_tests = testscenarios.load_tests_apply_scenarios

VERIFIER_GRANTS = {
    databases.POSTGRESQL: (
        "CREATE ROLE {role} LOGIN PASSWORD '{password}'",
        'GRANT CONNECT ON DATABASE {database} TO {role}',
        'GRANT USAGE ON SCHEMA public TO {role}',
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA '
        'public TO {role}',
        'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}',
    ),
    databases.MYSQL: (
        "CREATE USER '{role}'@'127.0.0.1' IDENTIFIED BY '{password}'",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON {database}.* TO "
        "'{role}'@'127.0.0.1'",
    ),
}
SCHEMA_REFUSED = {
    databases.POSTGRESQL: 'permission denied for schema public',
    databases.MYSQL: 'CREATE command denied to user',
}
MIGRATION = '4f1c7a52-0d0e-4c55-9a8e-6a3b1d2c9e10'
INSTANCE = '7d3e2a10-5b4c-4f8e-9a61-2c0b8d9e4f35'


class TestVerifierAccount(base.TestCase):

    scenarios = [(backend, {'backend': backend})
                 for backend in (databases.POSTGRESQL, databases.MYSQL)]

    def setUp(self):
        super().setUp()
        database = self.useFixture(databases.DatabaseFixture(self.backend))
        self.addCleanup(db.dispose)
        self.config.config(group='korora_database', connection=database.url)
        migration.db_sync()
        url = test_read_only_account.Account(
            database, 'verifier', VERIFIER_GRANTS).create(self)
        db.dispose()
        self.config.config(group='korora_database', connection=url)

    def test_the_verifiers_work(self):
        reference = test_api.make_policy('fleet', 1)
        db.policy_create(reference)
        for host in ('compute-1', 'compute-2'):
            db.host_create(test_api.make_identity(host), policy_name='fleet')
        self.assertEqual(['compute-1', 'compute-2'],
                         sorted(host.name
                                for host in db.hosts_claim_due(interval=60)))
        values = test_api.pcr_values(b'fleet')
        db.record_verdict('compute-1', test_api.make_verdict(
            'compute-1', True, reference, values))
        db.record_verdict('compute-2', test_api.make_verdict(
            'compute-2', False, reference, test_api.pcr_values(b'other')))
        records.create(MIGRATION, INSTANCE, 'compute-1', 'compute-2')
        records.transition(MIGRATION, 'compute-1', states.PEERS_ATTESTED)

        trust = db.host_trust_all()
        self.assertEqual([True, False], [trust['compute-1'][0],
                                         trust['compute-2'][0]])
        self.assertEqual(states.PEERS_ATTESTED, records.get(MIGRATION).state)
        self.assertEqual(2, len(records.history(MIGRATION)))

    def test_the_schema_stays_the_owners(self):
        def create_table():
            with db.get_engine().begin() as connection:
                connection.execute(sa.text('CREATE TABLE intruder (id INT)'))

        # oslo.db leaves some driver errors plain SQLAlchemy ones.
        error = self.assertRaises(
            (exception.DatabaseError, db_exception.DBError,
             sa.exc.DBAPIError), create_table)
        self.assertIn(SCHEMA_REFUSED[self.backend], str(error))
