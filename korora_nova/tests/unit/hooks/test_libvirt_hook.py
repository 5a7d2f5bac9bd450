"""korora-libvirt-hook: the destination's libvirt migrate hook, run as
libvirt runs it (a process, arguments, the domain XML on stdin) against
a real SQLite verifier database."""

import os
import socket
import subprocess
import threading

import fixtures

from korora_nova.hooks import libvirt_hook
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.tests import base
from korora_nova.tests import fixtures as korora_fixtures
from korora_nova.tests import hook_process
from korora_nova.tests.hook_process import DOMAIN
from korora_nova.tests.hook_process import hook_command
from korora_nova.tests.hook_process import HookResult
from korora_nova.tests.hook_process import INSTANCE
from korora_nova.tests.hook_process import RUN_LIMIT
from korora_nova.tests.hook_process import xml

OTHER_INSTANCE = '1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d'
MIGRATION = '9e8d7c6b-5a49-4382-a716-f5e4d3c2b1a0'
SOURCE = 'compute-1'
DEST = 'compute-2'

PLAIN_XML = """<domain type='kvm'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><disk type='file' device='disk'><target dev='vda'/></disk>
  </devices>
</domain>
"""

PASSTHROUGH_XML = """<domain type='kvm'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <devices>
    <tpm model='tpm-tis'>
      <backend type='passthrough'><device path='/dev/tpm0'/></backend>
    </tpm>
  </devices>
</domain>
"""


class HookTestCase(hook_process.HookAssertions, base.TestCase):

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(
            korora_fixtures.VerifierDatabaseFixture())
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.connection = 'sqlite:///' + self.database.path

    def write_config(self, connection=None, host=DEST, default=(),
                     **korora):
        lines = ['[DEFAULT]', 'host = %s' % host]
        lines += ['%s = %s' % item for item in default]
        lines += ['', '[korora_database]',
                  'connection = %s' % (connection or self.connection), '',
                  '[korora]']
        lines += ['%s = %s' % item for item in sorted(korora.items())]
        path = os.path.join(self.folder, 'korora.conf')
        with open(path, 'w') as stream:
            stream.write('\n'.join(lines) + '\n')
        return path

    def run_hook(self, stdin=None, args=('migrate', 'begin', '-'),
                 config=None, name=DOMAIN, **config_options):
        if config is None:
            config = self.write_config(**config_options)
        command = hook_command() + ['--config-file', config, name] + list(
            args)
        return hook_process.run(command, xml() if stdin is None else stdin,
                                cwd=self.folder)

    def record(self, state=states.TRANSFERRING, dest=DEST,
               instance=INSTANCE, migration=MIGRATION):
        records.create(migration, instance, SOURCE, dest, host=dest)
        if state in states.FORWARD:
            path = states.FORWARD[1:states.FORWARD.index(state) + 1]
        else:
            path = (states.PEERS_ATTESTED, states.KEY_CERTIFIED,
                    states.TRANSFERRING, state)
        for step in path:
            records.transition(migration, SOURCE, step)
        return records.get(migration)


class TestApproval(HookTestCase):

    def test_a_transferring_migration_to_this_host_passes(self):
        self.record(states.TRANSFERRING)
        self.assertPasses(self.run_hook())

    def test_the_uuid_is_compared_in_canonical_form(self):
        self.record(states.TRANSFERRING)
        self.assertPasses(self.run_hook(xml(uuid=INSTANCE.upper().replace(
            '-', ''))))

    def test_no_record_is_refused(self):
        result = self.run_hook()
        self.assertRefuses(result, 'no Korora-approved migration',
                           INSTANCE, DEST, DOMAIN)

    def test_a_record_of_another_instance_does_not_count(self):
        self.record(states.TRANSFERRING, instance=OTHER_INSTANCE)
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration')

    def test_a_record_for_another_destination_is_refused(self):
        self.record(states.TRANSFERRING, dest='compute-3')
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration',
                           'compute-3')

    def test_a_record_before_the_secret_was_opened_is_refused(self):
        for number, state in enumerate((states.REQUESTED,
                                        states.PEERS_ATTESTED,
                                        states.KEY_CERTIFIED)):
            migration = '%08d-5a49-4382-a716-f5e4d3c2b1a0' % number
            self.record(state, migration=migration)
            self.assertRefuses(self.run_hook(),
                               'no Korora-approved migration', state)
            records.transition(migration, DEST, states.ABORTED)

    def database_rows(self):
        from korora_nova.db import api as db
        return db.get_engine().begin()

    def test_key_certified_says_the_secret_is_not_opened(self):
        self.record(states.KEY_CERTIFIED)
        self.assertRefuses(self.run_hook(), 'KEY_CERTIFIED',
                           'has not opened the sealed vTPM secret')

    def test_a_transfer_that_ended_is_refused(self):
        self.record(states.MEASURED)
        self.assertRefuses(self.run_hook(), 'MEASURED')

    def test_an_aborted_migration_is_refused(self):
        self.record(states.ABORTED)
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration')

    def test_a_quarantined_migration_is_refused(self):
        self.record(states.QUARANTINED)
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration')

    def test_a_committed_migration_is_refused(self):
        self.record(states.COMMITTED)
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration')

    def test_an_unknown_state_is_refused(self):
        self.record(states.TRANSFERRING)
        with self.database_rows() as connection:
            connection.exec_driver_sql(
                "UPDATE migrations SET state = 'SOMETHING'")
        self.assertRefuses(self.run_hook(), 'SOMETHING',
                           'not a migration state')

    def test_two_migrations_in_flight_are_refused(self):
        self.record(states.TRANSFERRING)
        records.create('2e8d7c6b-5a49-4382-a716-f5e4d3c2b1a0', INSTANCE,
                       SOURCE, DEST)
        self.assertRefuses(self.run_hook(), '2 Korora migrations')

    def test_the_host_name_comes_from_default_host(self):
        self.record(states.TRANSFERRING)
        self.assertRefuses(self.run_hook(host='compute-9'),
                           'no Korora-approved migration', 'compute-9')


class TestLogging(HookTestCase):

    def test_details_go_to_the_log_file_only(self):
        log_file = os.path.join(self.folder, 'hook.log')
        missing = os.path.join(self.folder, 'missing', 'korora.sqlite')
        result = self.run_hook(
            connection='sqlite:///' + missing,
            default=[('log_file', log_file), ('use_stderr', 'true'),
                     ('debug', 'true')])
        self.assertRefuses(result, 'cannot read the Korora migration '
                                   'records')
        with open(log_file) as stream:
            logged = stream.read()
        self.assertIn('refused: cannot read the Korora migration records',
                      logged)
        self.assertIn('Traceback', logged)

    def test_an_admission_is_logged(self):
        self.record(states.TRANSFERRING)
        log_file = os.path.join(self.folder, 'hook.log')
        self.assertPasses(self.run_hook(default=[('log_file', log_file)]))
        with open(log_file) as stream:
            self.assertIn('admitted: instance %s: Korora migration %s'
                          % (INSTANCE, MIGRATION), stream.read())


class TestDomainsWithoutVTPM(HookTestCase):

    def test_pass_without_the_database(self):
        missing = os.path.join(self.folder, 'missing', 'korora.sqlite')
        self.assertPasses(self.run_hook(xml(PLAIN_XML),
                                        connection='sqlite:///' + missing))
        self.assertFalse(os.path.exists(os.path.dirname(missing)))

    def test_need_approval_when_required_for_all(self):
        result = self.run_hook(
            xml(PLAIN_XML), libvirt_hook_require_approval_for_all='true')
        self.assertRefuses(result, 'no Korora-approved migration')

    def test_pass_when_required_for_all_and_approved(self):
        self.record(states.TRANSFERRING)
        self.assertPasses(self.run_hook(
            xml(PLAIN_XML), libvirt_hook_require_approval_for_all='true'))

    def test_a_passthrough_tpm_is_refused_even_when_approved(self):
        self.record(states.TRANSFERRING)
        self.assertRefuses(self.run_hook(xml(PASSTHROUGH_XML)),
                           'passthrough')


class TestBadInput(HookTestCase):

    def test_malformed_xml(self):
        self.record(states.TRANSFERRING)
        self.assertRefuses(self.run_hook(b'<domain type="kvm"><uuid>'),
                           'malformed')

    def test_not_a_domain(self):
        self.assertRefuses(self.run_hook(b'<network/>'), 'not a domain')

    def test_entities_are_refused(self):
        self.record(states.TRANSFERRING)
        data = (b'<!DOCTYPE domain [<!ENTITY u "%s">]>'
                b'<domain type="kvm"><uuid>&u;</uuid></domain>'
                % INSTANCE.encode())
        self.assertRefuses(self.run_hook(data), 'DOCTYPE')

    def test_oversized_stdin(self):
        self.record(states.TRANSFERRING)
        data = xml().replace(b'</domain>', b'<!--' + b'x' * (
            libvirt_hook.MAX_XML_BYTES) + b'--></domain>')
        self.assertRefuses(self.run_hook(data), 'larger than')

    def test_empty_stdin(self):
        self.assertRefuses(self.run_hook(b''), 'no domain XML')

    def test_no_uuid(self):
        self.assertRefuses(self.run_hook(
            b"<domain type='kvm'><name>x</name></domain>"), '<uuid>')

    def test_a_uuid_that_is_not_one(self):
        self.assertRefuses(self.run_hook(xml(uuid='not-a-uuid')),
                           'is not a UUID')

    def test_a_strange_domain_name_stays_on_one_line(self):
        result = self.run_hook(name='evil\nname\x1b[31m' + 'n' * 500)
        self.assertRefuses(result, 'evil name')
        self.assertNotIn('\x1b', result.stderr)

    def test_missing_arguments(self):
        # libvirt always gives four; fewer cannot be told apart from
        # options, so only a lone operation is refused as such.
        process = subprocess.run(hook_command() + ['migrate'], input=xml(),
                                 capture_output=True, timeout=RUN_LIMIT,
                                 cwd=self.folder)
        self.assertRefuses(HookResult(process, 0), 'usage')

    def test_missing_config_file(self):
        result = self.run_hook(
            config=os.path.join(self.folder, 'missing.conf'))
        self.assertRefuses(result, 'cannot load the configuration')

    def test_invalid_option_value(self):
        result = self.run_hook(libvirt_hook_timeout='soon')
        self.assertRefuses(result, 'cannot load the configuration')

    def test_unknown_option_on_the_command_line(self):
        result = self.run_hook(args=('--no-such-option', DOMAIN, 'migrate',
                                     'begin', '-'))
        self.assertRefuses(result, 'cannot load the configuration')


class TestOtherOperations(HookTestCase):

    def test_pass_without_configuration_or_database(self):
        missing = os.path.join(self.folder, 'missing')
        for args in (('prepare', 'begin', '-'), ('start', 'begin', '-'),
                     ('started', 'begin', '-'), ('release', 'end', '-'),
                     ('stopped', 'end', '-'), ('migrate', 'end', '-'),
                     ('restore', 'begin', '-')):
            self.assertPasses(self.run_hook(
                b'<garbage', args=args,
                config=os.path.join(missing, 'korora.conf')))
        self.assertFalse(os.path.exists(missing))


class TestDatabaseTrouble(HookTestCase):

    def test_sqlite_in_a_missing_folder(self):
        missing = os.path.join(self.folder, 'missing', 'korora.sqlite')
        result = self.run_hook(connection='sqlite:///' + missing)
        self.assertRefuses(result, 'cannot read the Korora migration '
                                   'records')
        self.assertLess(result.elapsed, RUN_LIMIT)

    def test_a_database_without_the_schema(self):
        empty = os.path.join(self.folder, 'empty.sqlite')
        result = self.run_hook(connection='sqlite:///' + empty)
        self.assertRefuses(result, 'cannot read the Korora migration '
                                   'records')

    def closed_port(self):
        with socket.socket() as listener:
            listener.bind(('127.0.0.1', 0))
            return listener.getsockname()[1]

    def test_a_closed_postgresql_port(self):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            self.skipTest('psycopg2 is not installed')
        result = self.run_hook(
            connection='postgresql+psycopg2://u:secret@127.0.0.1:%d/db'
            % self.closed_port())
        self.assertRefuses(result, 'cannot read the Korora migration '
                                   'records')
        self.assertNotIn('secret', result.stderr)

    def test_a_closed_mysql_port(self):
        try:
            import pymysql  # noqa: F401
        except ImportError:
            self.skipTest('pymysql is not installed')
        result = self.run_hook(
            connection='mysql+pymysql://u:secret@127.0.0.1:%d/db'
            % self.closed_port())
        self.assertRefuses(result, 'cannot read the Korora migration '
                                   'records')
        self.assertNotIn('secret', result.stderr)

    def test_a_database_that_never_answers_times_out(self):
        try:
            import pymysql  # noqa: F401
        except ImportError:
            self.skipTest('pymysql is not installed')
        server = self.useFixture(SilentServerFixture())
        # The deadline counts from the hook's start, imports included: on
        # a busy machine 2 s could pass before it even connects.
        limit = 6.0
        result = self.run_hook(
            connection='mysql+pymysql://u:p@127.0.0.1:%d/db' % server.port,
            libvirt_hook_timeout=str(limit))
        self.assertRefuses(result, 'timed out')
        self.assertGreater(server.accepted, 0)
        # Not a timing test: it ended by itself, long before RUN_LIMIT.
        self.assertLess(result.elapsed, limit + 30)


class SilentServerFixture(fixtures.Fixture):
    """A TCP server that accepts connections and never says a word."""

    def _setUp(self):
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.connections = []
        self.stopping = False
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self.addCleanup(self._stop, thread)

    def _accept(self):
        while not self.stopping:
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.connections.append(connection)

    def _stop(self, thread):
        self.stopping = True
        thread.join(5)
        self.listener.close()
        for connection in self.connections:
            connection.close()


class TestDecision(base.TestCase):
    """The decision and its helpers, in this process."""

    def record(self, state=states.TRANSFERRING, dest=DEST):
        return records_row(state, dest)

    def test_check_records(self):
        record = self.record()
        self.assertIs(record, libvirt_hook.check_records(
            [record], INSTANCE, DEST))

    def test_check_records_refusals(self):
        cases = [
            ([], 'no Korora migration of it is in flight'),
            ([self.record(dest='compute-3')], 'goes from compute-1 to '
                                              'compute-3'),
            ([self.record(states.PEERS_ATTESTED)], 'key is not certified'),
            ([self.record('BOGUS')], "'BOGUS' is not a migration state"),
            ([self.record(), self.record()], '2 Korora migrations'),
        ]
        for found, phrase in cases:
            error = self.assertRaises(
                libvirt_hook.Refused, libvirt_hook.check_records,
                found, INSTANCE, DEST)
            self.assertIn(phrase, str(error))
            self.assertIn('no Korora-approved migration', str(error))

    def test_decide_reads_records_only_when_needed(self):
        asked = []

        def load(instance_uuid):
            asked.append(instance_uuid)
            return [self.record()]

        self.assertIn('no TPM', libvirt_hook.decide(xml(PLAIN_XML), DEST,
                                                    False, load))
        self.assertEqual([], asked)
        self.assertIn('TRANSFERRING', libvirt_hook.decide(
            xml(PLAIN_XML), DEST, True, load))
        self.assertIn('TRANSFERRING', libvirt_hook.decide(xml(), DEST,
                                                          False, load))
        self.assertEqual([INSTANCE, INSTANCE], asked)

    def test_one_line(self):
        self.assertEqual('a b c', libvirt_hook.one_line('a\nb\r\n\tc\x00'))
        self.assertEqual(20, len(libvirt_hook.one_line('x' * 100, 20)))

    def test_read_stdin_is_bounded(self):
        read_fd, write_fd = os.pipe()
        writer = threading.Thread(target=self._write,
                                  args=(write_fd, b'x' * 5000))
        writer.start()
        try:
            error = self.assertRaises(libvirt_hook.Refused,
                                      libvirt_hook.read_stdin, 1000,
                                      read_fd)
        finally:
            os.close(read_fd)
            writer.join(10)
        self.assertIn('larger than 1000 bytes', str(error))

    def _write(self, fd, data):
        try:
            os.write(fd, data)
        except OSError:
            pass
        finally:
            os.close(fd)

    def test_bounded_url(self):
        url = libvirt_hook.bounded_url(
            'mysql+pymysql://u:p@db.example/korora?charset=utf8', 4.2)
        for part in ('connect_timeout=6', 'read_timeout=6',
                     'write_timeout=6', 'charset=utf8', 'u:p@'):
            self.assertIn(part, url)
        self.assertIn('connect_timeout=30', libvirt_hook.bounded_url(
            'postgresql://u:p@db/korora?connect_timeout=30', 4))
        self.assertIn('timeout=2.5', libvirt_hook.bounded_url(
            'sqlite:////var/lib/korora/korora.sqlite', 2.5))
        self.assertRaises(libvirt_hook.Refused, libvirt_hook.bounded_url,
                          'not a url', 1)

    def test_options(self):
        from oslo_config import cfg

        from korora_nova.conf import korora as korora_options

        conf = cfg.ConfigOpts()
        korora_options.register_opts(conf)
        conf([])
        self.assertFalse(conf.korora.libvirt_hook_require_approval_for_all)
        self.assertEqual(korora_options.LIBVIRT_HOOK_TIMEOUT,
                         conf.korora.libvirt_hook_timeout)


def records_row(state, dest):
    """A detached migration record (no database needed)."""
    from korora_nova.db import models

    return models.Migration(uuid=MIGRATION, instance_uuid=INSTANCE,
                            source_host=SOURCE, dest_host=dest, state=state)
