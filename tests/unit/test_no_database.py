"""A compute host's processes hold no verifier database credentials.

korora-vtpm-manager and nova-compute (compute_driver =
korora.KororaDriver) refuse to start with a [korora_database]
connection and switch database access off for the rest of the process
(korora_nova.db.api.disable_db_access), as Nova's nova-compute does
with DISABLE_DB_ACCESS. The daemons run here as real processes, as an
operator starts them; whatever would switch the database off runs in a
process of its own, so this test process keeps its database.
korora-libvirt-hook, which reads no configuration, makes the database
layer unimportable instead.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import fixtures

from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova import exception
from korora_nova.libvirt_hook import client as libvirt_hook
from tests import base
from korora_nova.demo import services
from tests.fixtures import hook_process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# Far above a start-up's few seconds: only there so that a broken
# process fails the test instead of hanging it.
RUN_LIMIT = 120
ENV_CONNECTION = 'OS_KORORA_DATABASE__CONNECTION'


def credentials_refused(service):
    return ('%s must not hold database credentials: remove '
            '[korora_database] connection from its configuration' % service)


def access_refused(service):
    return ('%s has no database access: only korora-verifier and '
            'korora-manage on the control plane use [korora_database]'
            % service)


def environment(**extra):
    """This tree first on the path, no database from the environment."""
    env = dict(os.environ)
    env.pop(ENV_CONNECTION, None)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p])
    env.update(extra)
    return env


def run(args, **env):
    return subprocess.run([sys.executable] + args, capture_output=True,
                          text=True, timeout=RUN_LIMIT, cwd=ROOT,
                          env=environment(**env))


class NoDatabaseTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.database_path = os.path.join(self.folder, 'korora.sqlite')
        self.url = 'sqlite:///' + self.database_path

    def write_config(self, text):
        path = os.path.join(self.folder, 'korora.conf')
        with open(path, 'w') as stream:
            stream.write(text)
        return path

    def assertStartRefused(self, process, service, reason):
        """Exit status 1, the daemon's one-line reason on stderr, no
        traceback."""
        self.assertEqual(1, process.returncode, process.stderr)
        self.assertIn('%s: cannot start: %s\n' % (service, reason),
                      process.stderr)
        self.assertNotIn('Traceback', process.stderr)
        self.assertNotIn('Traceback', process.stdout)


class TestVTPMManager(NoDatabaseTestCase):
    """korora-vtpm-manager --config-file F, as an operator starts it."""

    SERVICE = 'korora-vtpm-manager'

    def manager_config(self, database=''):
        # A TPM that does not answer: a manager that got past the
        # database check stops at its TPM instead.
        return self.write_config(
            '[DEFAULT]\nhost = compute-1\n'
            '[korora]\ntcti = swtpm:host=127.0.0.1,port=9\n'
            'libvirt_hook_socket =\nstate_path = %s\n%s\n'
            % (self.folder, database))

    def start(self, config, **env):
        return run(['-m', 'korora_nova.cmd.vtpm_manager', '--config-file',
                    config], **env)

    def test_a_configured_connection_stops_it(self):
        process = self.start(self.manager_config(
            '[korora_database]\nconnection = %s' % self.url))
        self.assertStartRefused(process, self.SERVICE,
                                credentials_refused(self.SERVICE))
        self.assertFalse(os.path.exists(self.database_path))

    def test_a_connection_from_the_environment_stops_it(self):
        process = self.start(self.manager_config(),
                             **{ENV_CONNECTION: self.url})
        self.assertStartRefused(process, self.SERVICE,
                                credentials_refused(self.SERVICE))

    def test_without_a_connection_it_goes_on_to_its_tpm(self):
        process = self.start(self.manager_config())
        self.assertEqual(1, process.returncode, process.stderr)
        self.assertIn('%s: cannot start: ' % self.SERVICE, process.stderr)
        self.assertNotIn('database', process.stderr)
        self.assertNotIn('Traceback', process.stderr)


class TestKororaDriver(NoDatabaseTestCase):
    """compute_driver = korora.KororaDriver in nova-compute."""

    def test_a_configured_connection_fails_novas_driver_load(self):
        from nova.virt import driver as nova_driver

        self.config.config(connection=self.url, group='korora_database')
        self.flags(base_compute_driver='fake.FakeDriver')
        error = self.assertRaises(
            exception.ConfigurationError, nova_driver.load_compute_driver,
            None, 'korora.KororaDriver')
        self.assertEqual(credentials_refused('nova-compute'), str(error))
        # Refused before anything was switched off: this process (a test)
        # still has its database.
        self.addCleanup(db.dispose)
        migration.db_sync()
        self.assertEqual([], db.host_list())

    def test_the_database_is_off_once_the_driver_is_loaded(self):
        code = textwrap.dedent('''\
            import sys
            from nova.virt import driver as nova_driver
            from nova.virt import fake
            from korora_nova import conf
            from korora_nova.db import api as db
            from korora_nova import exception
            from korora_nova.hooks import driver as hooks_driver
            conf.CONF([], project='korora')
            conf.CONF.set_override('base_compute_driver', 'fake.FakeDriver',
                                   group='korora')
            loaded = nova_driver.load_compute_driver(None,
                                                     'korora.KororaDriver')
            assert isinstance(loaded, hooks_driver.LiveMigrationHooks)
            assert isinstance(loaded, fake.FakeDriver)
            try:
                db.host_list()
            except exception.DatabaseError as error:
                print(error)
            else:
                print('host_list() answered')
            ''')
        process = run(['-c', code])
        self.assertEqual(0, process.returncode, process.stderr)
        self.assertEqual(access_refused('nova-compute') + '\n',
                         process.stdout)


class TestDisableDBAccess(NoDatabaseTestCase):
    """db.disable_db_access in a process of its own."""

    def run_disabled(self, call):
        """Print the number of hosts, switch the database off, then print
        what call (a statement) raises."""
        code = textwrap.dedent('''\
            import sys
            from korora_nova import conf
            from korora_nova.db import api as db
            from korora_nova.db import migration
            from korora_nova import exception
            conf.CONF([], project='korora')
            conf.CONF.set_override('connection', sys.argv[1],
                                   group='korora_database')
            migration.db_sync()
            print(len(db.host_list()))
            db.disable_db_access('korora-vtpm-manager')
            try:
                %s
            except exception.DatabaseError as error:
                print(error)
            else:
                print('answered')
            ''') % call
        return run(['-c', code, self.url])

    def assertRefused(self, call):
        process = self.run_disabled(call)
        self.assertEqual(0, process.returncode, process.stderr)
        self.assertEqual(
            ['0', access_refused('korora-vtpm-manager')],
            process.stdout.splitlines())

    def test_host_list(self):
        self.assertRefused('db.host_list()')

    def test_a_write(self):
        self.assertRefused('db.host_delete("compute-1")')

    def test_the_context_manager_of_another_url(self):
        self.assertRefused('db.context_manager("sqlite://")')

    def test_the_test_process_keeps_its_database(self):
        self.config.config(connection=self.url, group='korora_database')
        self.addCleanup(db.dispose)
        migration.db_sync()
        self.assertEqual([], db.host_list())


class TestAPIReadsOnly(NoDatabaseTestCase):
    """korora-api as its WSGI entry point starts it (api.wsgi, in a
    process of its own): it answers reads from the database and refuses
    every write of its own, which goes through the verifier."""

    def test_reads_answered_writes_refused(self):
        config = self.write_config(
            '[korora_database]\nconnection = %s\n' % self.url)
        code = textwrap.dedent('''\
            import os, sys
            import webob
            from korora_nova.db import api as db
            from korora_nova.db import migration
            from korora_nova import conf
            conf.CONF([], project='korora', default_config_files=[sys.argv[1]])
            migration.db_sync()
            conf.CONF.reset()
            os.environ['OS_KORORA_CONFIG_DIR'] = os.path.dirname(sys.argv[1])
            from korora_nova.api import wsgi
            application = wsgi.init_application()
            print(webob.Request.blank('/').get_response(application).status)
            print(len(db.host_list()))
            from korora_nova import exception
            try:
                db.host_delete('compute-1')
            except exception.DatabaseError as error:
                print(error)
            else:
                print('answered')
            ''')
        process = run(['-c', code, config])
        self.assertEqual(0, process.returncode, process.stderr)
        self.assertEqual(
            ['200 OK', '0', 'korora-api only reads the database: every '
             'write goes through korora-verifier'],
            # Below the log lines (oslo.log writes them to stdout).
            process.stdout.splitlines()[-3:])


class TestRefuseConfiguredConnection(base.TestCase):

    def test_the_default_is_not_a_configured_connection(self):
        self.assertIsNone(db.refuse_configured_connection(
            db.CONF, 'korora-vtpm-manager'))

    def test_an_override_is(self):
        self.config.config(connection='sqlite://', group='korora_database')
        error = self.assertRaises(
            exception.ConfigurationError, db.refuse_configured_connection,
            db.CONF, 'korora-vtpm-manager')
        self.assertEqual(credentials_refused('korora-vtpm-manager'),
                         str(error))
        self.assertEqual(1, len(str(error).splitlines()))


class TestLibvirtHook(NoDatabaseTestCase):
    """korora-libvirt-hook reads no configuration and cannot load the
    database layer (it stays standard-library only)."""

    SERVICE = 'korora-libvirt-hook'

    def test_a_config_file_is_refused_as_a_bad_argument(self):
        # An operator who hands it a configuration (with credentials)
        # sees every incoming migration refused, never the file read.
        config = self.write_config('[korora_database]\nconnection = %s\n'
                                   % self.url)
        process = subprocess.run(
            [sys.executable, '-m', 'korora_nova.cmd.libvirt_hook',
             '--config-file', config, hook_process.DOMAIN, 'migrate',
             'begin', '-'], input=hook_process.xml(), capture_output=True,
            timeout=RUN_LIMIT, cwd=ROOT, env=environment())
        self.assertEqual(1, process.returncode)
        self.assertEqual(b'', process.stdout)
        self.assertEqual(
            "Korora: incoming live migration of domain %s refused: bad "
            "arguments: unknown option '--config-file'; %s\n"
            % (hook_process.DOMAIN, libvirt_hook.USAGE),
            process.stderr.decode())
        self.assertFalse(os.path.exists(self.database_path))

    def test_the_database_layer_cannot_be_imported_after_main(self):
        code = textwrap.dedent('''\
            from korora_nova.cmd import libvirt_hook
            # Not a migration: the hook passes at once.
            print(libvirt_hook.main(['dom', 'started', 'begin', '-']))
            for name in ('korora_nova.db.api', 'sqlalchemy', 'oslo_db'):
                try:
                    __import__(name)
                except ImportError as error:
                    print(error)
                else:
                    print('imported', name)
            # The standard library still imports.
            import xml.dom.minidom
            print(xml.dom.minidom.parseString('<a/>').documentElement.tagName)
            ''')
        process = run(['-c', code])
        self.assertEqual(0, process.returncode, process.stderr)
        refused = ('%s has no database access: only korora-verifier and '
                   'korora-manage on the control plane use '
                   '[korora_database] (import of %%s refused)'
                   % self.SERVICE)
        self.assertEqual(
            ['0', refused % 'korora_nova.db', refused % 'sqlalchemy',
             refused % 'oslo_db', 'a'], process.stdout.splitlines())


class TestManagerAnswersWithoutDatabase(NoDatabaseTestCase):
    """A running korora-vtpm-manager (real swtpm, no database) answers
    korora-libvirt-hook: a vTPM guest's incoming migration is refused,
    never admitted, with the reason on the hook's stderr."""

    def start_manager(self, socket_path):
        tpm = self.useFixture(services.SoftwareTPMFixture())
        # The manager owns the TPM (swtpm serves one client at a time).
        tpm.connection.close()
        keys = services.verifier_keys(self)
        config = self.write_config(
            '[DEFAULT]\nhost = compute-2\ntransport_url = fake://\n'
            '[korora]\ntcti = %s\nek_ca_bundle = %s\nstate_path = %s\n'
            'libvirt_hook_socket = %s\nverifier_public_keys = %s\n' % (
                tpm.tpm.tcti, tpm.ca_bundle, self.folder, socket_path,
                keys.public_path))
        log_path = os.path.join(self.folder, 'manager.log')
        with open(log_path, 'ab') as log:
            process = subprocess.Popen(
                [sys.executable, '-m', 'korora_nova.cmd.vtpm_manager',
                 '--config-file', config], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env=environment(), start_new_session=True)
        self.addCleanup(self.stop, process)
        deadline = time.monotonic() + RUN_LIMIT
        while not os.path.exists(socket_path):
            with open(log_path) as log:
                self.assertIsNone(process.poll(), log.read())
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        return log_path

    @staticmethod
    def stop(process):
        """SIGTERM to the manager's own process group, then SIGKILL."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def test_a_vtpm_guest_is_refused(self):
        socket_path = os.path.join(self.folder, 'run', 'hook.sock')
        log_path = self.start_manager(socket_path)

        result = hook_process.run(
            [sys.executable, '-m', 'korora_nova.cmd.libvirt_hook',
             '--socket', socket_path, hook_process.DOMAIN, 'migrate',
             'begin', '-'], hook_process.xml(), env=environment(), cwd=ROOT)

        self.assertEqual(1, result.status, result)
        self.assertEqual(b'', result.stdout)
        self.assertEqual(1, result.stderr.count('\n'), result)
        # The decision is the manager's own approvals: none, so refused,
        # and no database was asked.
        self.assertTrue(result.stderr.startswith(
            'Korora: incoming live migration of domain %s refused: no '
            'Korora-approved migration of instance %s to compute-2'
            % (hook_process.DOMAIN, hook_process.INSTANCE)), result)
        with open(log_path) as log:
            logged = log.read()
        self.assertIn('incoming live migration of domain %s refused'
                      % hook_process.DOMAIN, logged)
        self.assertNotIn('DatabaseError', logged)
