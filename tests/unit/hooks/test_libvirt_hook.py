"""korora-libvirt-hook: the destination's libvirt migrate hook, run as
libvirt runs it (a process, arguments, the domain XML on stdin), asking
korora-vtpm-manager's hook server (korora_nova.vtpm_manager.hook_server)
that decides from the approvals its vTPM manager holds (what the
verifier's authorizations of a transfer approved; no database)."""

import json
import logging
import os
import socket
import stat
import sys
import threading
import time

import fixtures

from korora_nova import exception
from korora_nova.vtpm_manager import admission
from korora_nova.libvirt_hook import client as libvirt_hook
from korora_nova.libvirt_hook import protocol
from korora_nova.migration import states
from tests import base
from korora_nova.demo import services
from tests.fixtures import hook_process
from tests.fixtures.hook_process import DOMAIN
from tests.fixtures.hook_process import hook_command
from tests.fixtures.hook_process import INSTANCE
from tests.fixtures.hook_process import RUN_LIMIT
from tests.fixtures.hook_process import xml
from korora_nova.vtpm_manager import hook_server
from korora_nova.vtpm_manager import manager as vtpm_manager

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


class ApprovingManager:
    """The approvals of a vTPM manager, without its TPM: the manager's
    own incoming() reads them (expired ones are dropped). A real manager
    records one when nova-compute presents the verifier's authorization
    of a transfer (test_local_calls runs that end to end)."""

    incoming = vtpm_manager.VTPMManager.incoming

    def __init__(self):
        self._approvals = {}

    def approve(self, state=states.TRANSFERRING, dest=DEST,
                instance=INSTANCE, migration=MIGRATION, lifetime=300):
        approval = vtpm_manager.Approval(migration, instance, SOURCE, dest,
                                         state, time.time() + lifetime)
        self._approvals[instance] = approval
        return approval


class HookTestCase(hook_process.HookAssertions, base.TestCase):

    def setUp(self):
        super().setUp()
        self.manager = ApprovingManager()
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.log = self.useFixture(fixtures.FakeLogger(
            name=hook_server.__name__, level=logging.DEBUG))

    def serve(self, host=DEST, manager=True, **korora):
        """A hook server for host deciding from the test's manager (or
        none at all: manager=None), with [korora] options korora; its
        socket path."""
        return self.useFixture(services.HookServerFixture(
            host, manager=self.manager if manager is True else manager,
            **korora)).path

    def run_hook(self, stdin=None, args=('migrate', 'begin', '-'),
                 name=DOMAIN, socket_path=None, options=(), pipe=False,
                 **server):
        """The hook as libvirt runs it, asking a new server (options of
        serve()) unless socket_path is given; stdin from a pipe, as
        libvirt gives it, when pipe."""
        if socket_path is None:
            socket_path = self.serve(**server)
        command = hook_command() + ['--socket', socket_path] + list(
            options) + [name] + list(args)
        return hook_process.run(command, xml() if stdin is None else stdin,
                                cwd=self.folder, pipe=pipe)

    def record(self, state=states.TRANSFERRING, **approval):
        return self.manager.approve(state, **approval)


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

    def test_an_expired_approval_is_refused_and_forgotten(self):
        self.record(states.TRANSFERRING, lifetime=-1)
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration',
                           'no Korora migration of it is in flight')
        self.assertEqual({}, self.manager._approvals)

    def test_a_manager_that_approves_nothing_refuses(self):
        self.assertRefuses(self.run_hook(manager=None),
                           'no Korora-approved migration of instance',
                           'no Korora migration of it is in flight', DOMAIN)

    def test_a_record_of_another_instance_does_not_count(self):
        self.record(states.TRANSFERRING, instance=OTHER_INSTANCE)
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration')

    def test_a_record_for_another_destination_is_refused(self):
        self.record(states.TRANSFERRING, dest='compute-3')
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration',
                           'compute-3')

    def test_a_record_before_the_secret_was_opened_is_refused(self):
        path = self.serve()
        for number, state in enumerate((states.REQUESTED,
                                        states.PEERS_ATTESTED,
                                        states.KEY_CERTIFIED)):
            migration = '%08d-5a49-4382-a716-f5e4d3c2b1a0' % number
            self.record(state, migration=migration)
            self.assertRefuses(self.run_hook(socket_path=path),
                               'no Korora-approved migration', state,
                               migration)

    def test_key_certified_says_the_secret_is_not_opened(self):
        self.record(states.KEY_CERTIFIED)
        self.assertRefuses(self.run_hook(), 'KEY_CERTIFIED',
                           'has not opened the sealed vTPM secret')

    def test_a_transfer_that_ended_is_refused(self):
        self.record(states.MEASURED)
        self.assertRefuses(self.run_hook(), 'MEASURED')

    def test_final_states_are_refused(self):
        path = self.serve()
        for state in (states.ABORTED, states.QUARANTINED,
                      states.COMMITTED):
            self.record(state)
            self.assertRefuses(self.run_hook(socket_path=path),
                               'no Korora-approved migration', state)

    def test_an_unknown_state_is_refused(self):
        self.record('SOMETHING')
        self.assertRefuses(self.run_hook(), 'SOMETHING',
                           'not a migration state')

    def test_the_host_name_comes_from_default_host(self):
        self.record(states.TRANSFERRING)
        self.assertRefuses(self.run_hook(host='compute-9'),
                           'no Korora-approved migration', 'compute-9')


class TestLogging(HookTestCase):
    """The manager's log says what happened; the hook only the reason."""

    def test_a_refusal_goes_to_the_managers_log(self):
        self.assertRefuses(self.run_hook(), 'no Korora-approved migration')
        logged = self.log.output
        self.assertIn('incoming live migration of domain %s refused: no '
                      'Korora-approved migration of instance %s to %s'
                      % (DOMAIN, INSTANCE, DEST), logged)
        self.assertNotIn('Traceback', logged)

    def test_a_failing_manager_refuses_with_the_traceback_in_the_log(self):
        class Failing:
            def incoming(self, instance_uuid):
                raise RuntimeError('approvals unreadable: for the log only')

        result = self.run_hook(manager=Failing())
        self.assertRefuses(result, 'unexpected error in korora-vtpm-manager '
                                   '(RuntimeError): see its log')
        self.assertNotIn('for the log only', result.stderr)
        self.assertIn('Traceback', self.log.output)
        self.assertIn('approvals unreadable: for the log only',
                      self.log.output)

    def test_an_admission_is_logged(self):
        self.record(states.TRANSFERRING)
        self.assertPasses(self.run_hook())
        self.assertIn('incoming live migration of domain %s admitted: '
                      'instance %s: Korora migration %s'
                      % (DOMAIN, INSTANCE, MIGRATION), self.log.output)


class TestDomainsWithoutVTPM(HookTestCase):

    def test_pass_without_asking_the_manager(self):
        self.assertPasses(self.run_hook(xml(PLAIN_XML), manager=None))
        self.assertIn('no TPM: no approval needed', self.log.output)

    def test_need_approval_when_required_for_all(self):
        result = self.run_hook(
            xml(PLAIN_XML), libvirt_hook_require_approval_for_all=True)
        self.assertRefuses(result, 'no Korora-approved migration')

    def test_pass_when_required_for_all_and_approved(self):
        self.record(states.TRANSFERRING)
        self.assertPasses(self.run_hook(
            xml(PLAIN_XML), libvirt_hook_require_approval_for_all=True))

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
            protocol.MAX_XML_BYTES) + b'--></domain>')
        # Read from libvirt's pipe, and from a file, whose size is known.
        self.assertRefuses(self.run_hook(data, pipe=True), 'larger than')
        self.assertRefuses(self.run_hook(data),
                           'stdin holds %d bytes, more than the %d allowed'
                           % (len(data), protocol.MAX_XML_BYTES))

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
        result = hook_process.run(hook_command() + ['migrate'], xml(),
                                  cwd=self.folder)
        self.assertRefuses(result, 'bad arguments', 'usage')

    def test_bad_options(self):
        path = self.serve()
        for options, phrase in (
                (['--no-such-option'], 'unknown option'),
                (['--timeout', 'soon'], 'is not a number of seconds'),
                (['--timeout=0'], 'is not a number of seconds'),
                (['--socket='], '--socket is empty'),
                (['--timeout'], 'needs a value')):
            self.assertRefuses(self.run_hook(socket_path=path,
                                             options=options),
                               'bad arguments', phrase, 'usage')


class TestOtherOperations(HookTestCase):

    def test_pass_without_a_manager(self):
        missing = os.path.join(self.folder, 'missing', 'hook.sock')
        for args in (('prepare', 'begin', '-'), ('start', 'begin', '-'),
                     ('started', 'begin', '-'), ('release', 'end', '-'),
                     ('stopped', 'end', '-'), ('migrate', 'end', '-'),
                     ('restore', 'begin', '-')):
            self.assertPasses(self.run_hook(
                b'<garbage', args=args, socket_path=missing,
                options=['--timeout', 'not even read']))


class TestLibxlIncoming(HookTestCase):
    """libvirt 9.0's libxl driver runs migrate begin with empty stdin
    (it cannot format the definition it means to pass): the libxl.d
    hook notes the domain then, and checks it at prepare begin, where
    the definition is on stdin."""

    def setUp(self):
        super().setUp()
        self.incoming = os.path.join(self.folder, 'libxl-incoming')
        self.options = ['--incoming-dir', self.incoming]

    def marks(self):
        if not os.path.isdir(self.incoming):
            return []
        return [open(os.path.join(self.incoming, name), 'rb').read()
                for name in os.listdir(self.incoming)]

    def test_an_empty_migrate_begin_notes_the_domain_and_passes(self):
        missing = os.path.join(self.folder, 'no-manager.sock')
        self.assertPasses(self.run_hook(b'', socket_path=missing,
                                        options=self.options))
        self.assertEqual([DOMAIN.encode()], self.marks())
        self.assertEqual(0o700, os.stat(self.incoming).st_mode & 0o777)

    def test_a_prepare_without_a_note_is_a_start_here(self):
        missing = os.path.join(self.folder, 'no-manager.sock')
        self.assertPasses(self.run_hook(args=('prepare', 'begin', '-'),
                                        socket_path=missing,
                                        options=self.options))

    def test_the_prepare_after_a_note_is_checked(self):
        socket_path = self.serve()
        self.assertPasses(self.run_hook(b'', socket_path=socket_path,
                                        options=self.options))
        result = self.run_hook(args=('prepare', 'begin', '-'),
                               socket_path=socket_path, options=self.options)
        self.assertRefuses(result, 'incoming live migration of domain %s '
                           'refused' % DOMAIN, 'no Korora-approved migration',
                           INSTANCE)
        # Taken: the next start of that name is a start here.
        self.assertEqual([], self.marks())
        self.assertPasses(self.run_hook(args=('prepare', 'begin', '-'),
                                        socket_path=socket_path,
                                        options=self.options))

    def test_an_approved_arrival_passes_at_prepare(self):
        self.record(states.TRANSFERRING)
        socket_path = self.serve()
        self.assertPasses(self.run_hook(b'', socket_path=socket_path,
                                        options=self.options))
        self.assertPasses(self.run_hook(args=('prepare', 'begin', '-'),
                                        socket_path=socket_path,
                                        options=self.options))
        self.assertEqual([], self.marks())

    def test_a_note_that_cannot_be_written_refuses(self):
        with open(self.incoming, 'w') as stream:
            stream.write('a file, not a folder')
        result = self.run_hook(b'', options=self.options)
        self.assertRefuses(result, 'cannot note the incoming domain in %s'
                           % self.incoming)

    def test_a_migrate_begin_with_xml_is_checked_there(self):
        # A libvirt that passes the definition: no note, the check now.
        result = self.run_hook(options=self.options)
        self.assertRefuses(result, 'no Korora-approved migration')
        self.assertEqual([], self.marks())

    def test_a_relative_incoming_dir_is_refused(self):
        result = self.run_hook(b'', options=['--incoming-dir', 'incoming'])
        self.assertRefuses(result, 'bad arguments', '--incoming-dir',
                           'not an absolute path')


class TestManagerTrouble(HookTestCase):
    """No manager, or one that does not follow the protocol: the hook
    refuses with a line an operator can act on."""

    def test_no_manager(self):
        path = os.path.join(self.folder, 'run', 'libvirt-hook.sock')
        result = self.run_hook(socket_path=path)
        self.assertRefuses(result, 'korora-vtpm-manager does not answer on '
                           '%s (is it running, with [korora] '
                           'libvirt_hook_socket = %s?)' % (path, path))

    def test_a_socket_nobody_listens_on(self):
        path = os.path.join(self.folder, 'stale.sock')
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(path)
        result = self.run_hook(socket_path=path)
        self.assertRefuses(result, 'korora-vtpm-manager does not answer on '
                           '%s' % path)

    def test_a_manager_that_never_answers(self):
        server = self.useFixture(UnixAnswerFixture(self.folder, None))
        result = self.run_hook(socket_path=server.path,
                               options=['--timeout', '2'])
        self.assertRefuses(result, 'timed out after 2.0 s waiting for '
                           'korora-vtpm-manager on %s' % server.path)
        self.assertLess(result.elapsed, 2 + 10)
        self.assertEqual(1, len(server.requests))

    def test_answers_that_are_not_the_protocol(self):
        for answer, phrase in (
                (b'', 'closed the connection without an answer'),
                (b'HELLO\n', 'sent a garbled answer'),
                (b'PASS', 'sent a garbled answer'),
                (b'PASS ok\nPASS ok\n', 'sent a garbled answer'),
                (b'pass ok\n', 'sent a garbled answer'),
                (b'PASS ' + b'x' * protocol.MAX_ANSWER + b'\n',
                 'sent an oversized answer')):
            server = self.useFixture(UnixAnswerFixture(self.folder, answer))
            self.assertRefuses(self.run_hook(socket_path=server.path),
                               'korora-vtpm-manager on %s' % server.path,
                               phrase)

    def test_the_request_and_the_answers(self):
        passing = self.useFixture(UnixAnswerFixture(self.folder,
                                                    b'PASS fine\n'))
        self.assertPasses(self.run_hook(socket_path=passing.path,
                                        name='dom\n1'))
        self.assertEqual([b'korora-libvirt-hook 1 dom 1\n' + xml()],
                         passing.requests)
        refusing = self.useFixture(UnixAnswerFixture(
            self.folder, b'REFUSE not \xc3\xa9 today\n'))
        self.assertRefuses(self.run_hook(socket_path=refusing.path),
                           'domain %s refused: not \xe9 today' % DOMAIN)


class UnixAnswerFixture(fixtures.Fixture):
    """A stand-in manager on a UNIX socket in folder: it reads each
    request to its end and sends answer (bytes), or, with None, never
    says a word. Attributes: path, requests."""

    def __init__(self, folder, answer):
        super().__init__()
        self.folder = folder
        self.answer = answer

    def _setUp(self):
        self.path = os.path.join(self.folder, 'a%s.sock' % os.urandom(4).hex())
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.requests = []
        self.connections = []
        self.stopping = False
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self.addCleanup(self._stop, thread)

    def _serve(self):
        while not self.stopping:
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections.append(connection)
            connection.settimeout(RUN_LIMIT)
            request = b''
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                request += chunk
            self.requests.append(request)
            if self.answer is not None:
                connection.sendall(self.answer)
                connection.close()

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
        self.assertIs(record, admission.check_records(
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
                protocol.Refused, admission.check_records,
                found, INSTANCE, DEST)
            self.assertIn(phrase, str(error))
            self.assertIn('no Korora-approved migration', str(error))

    def test_decide_reads_records_only_when_needed(self):
        asked = []

        def load(instance_uuid):
            asked.append(instance_uuid)
            return [self.record()]

        self.assertIn('no TPM', admission.decide(xml(PLAIN_XML), DEST,
                                                 False, load))
        self.assertEqual([], asked)
        self.assertIn('TRANSFERRING', admission.decide(
            xml(PLAIN_XML), DEST, True, load))
        self.assertIn('TRANSFERRING', admission.decide(xml(), DEST,
                                                       False, load))
        self.assertEqual([INSTANCE, INSTANCE], asked)

    def test_one_line(self):
        self.assertEqual('a b c', protocol.one_line('a\nb\r\n\tc\x00'))
        self.assertEqual(20, len(protocol.one_line('x' * 100, 20)))

    def test_read_stdin_is_bounded(self):
        read_fd, write_fd = os.pipe()
        writer = threading.Thread(target=self._write,
                                  args=(write_fd, b'x' * 5000))
        writer.start()
        try:
            error = self.assertRaises(protocol.Refused,
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

    def test_options_take_their_defaults_from_the_hook(self):
        from oslo_config import cfg

        from korora_nova.conf import korora as korora_options

        conf = cfg.ConfigOpts()
        korora_options.register_opts(conf)
        conf([])
        self.assertFalse(conf.korora.libvirt_hook_require_approval_for_all)
        self.assertEqual(protocol.DEFAULT_TIMEOUT,
                         conf.korora.libvirt_hook_timeout)
        self.assertEqual(protocol.DEFAULT_SOCKET,
                         conf.korora.libvirt_hook_socket)

    def test_request_header_is_one_bounded_ascii_line(self):
        header = libvirt_hook.request_header('\u00e9vil\nname' * 50)
        self.assertLessEqual(len(header), protocol.MAX_HEADER)
        self.assertTrue(header.startswith(protocol.PROTOCOL + b' '))
        self.assertEqual(1, header.count(b'\n'))
        self.assertTrue(header.endswith(b'\n'))
        header.decode('ascii')


class TestHookServer(base.TestCase):
    """The manager's socket: where, with which mode, what it replaces,
    and requests that are not the hook's."""

    def setUp(self):
        super().setUp()
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.folder, 'run', 'libvirt-hook.sock')
        self.log = self.useFixture(fixtures.FakeLogger(
            name=hook_server.__name__, level=logging.DEBUG))

    def serve(self, **korora):
        return self.useFixture(services.HookServerFixture(
            DEST, path=self.path, **korora))

    def ask(self, data, shut=True):
        """Send data as a request; the answer (bytes)."""
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(RUN_LIMIT)
            client.connect(self.path)
            client.sendall(data)
            if shut:
                client.shutdown(socket.SHUT_WR)
            answer = b''
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    return answer
                answer += chunk

    def test_socket_0600_in_a_0755_folder_whatever_the_umask(self):
        old = os.umask(0o077)
        try:
            server = self.serve()
        finally:
            os.umask(old)
        info = os.lstat(self.path)
        self.assertTrue(stat.S_ISSOCK(info.st_mode))
        self.assertEqual(0o600, stat.S_IMODE(info.st_mode))
        self.assertEqual(os.getuid(), info.st_uid)
        self.assertEqual(0o755, stat.S_IMODE(os.stat(
            os.path.dirname(self.path)).st_mode))
        # Nothing left beside it (the private folder it was bound in).
        self.assertEqual(['libvirt-hook.sock'],
                         os.listdir(os.path.dirname(self.path)))
        server.server.stop()
        self.assertFalse(os.path.lexists(self.path))

    def test_a_stale_socket_is_replaced(self):
        os.mkdir(os.path.dirname(self.path))
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(self.path)
        before = os.lstat(self.path).st_ino
        self.serve()
        self.assertNotEqual(before, os.lstat(self.path).st_ino)
        self.assertTrue(self.ask(libvirt_hook.request_header('d') +
                                 xml(PLAIN_XML)).startswith(b'PASS '))

    def test_a_regular_file_is_not_replaced(self):
        os.mkdir(os.path.dirname(self.path))
        with open(self.path, 'w') as stream:
            stream.write('precious\n')
        server = hook_server.HookServer(None, DEST, self.path)
        error = self.assertRaises(exception.HookSocketError, server.start)
        self.assertIn('%s exists and is a regular file: not replaced'
                      % self.path, str(error))
        with open(self.path) as stream:
            self.assertEqual('precious\n', stream.read())
        self.assertEqual(['libvirt-hook.sock'],
                         os.listdir(os.path.dirname(self.path)))

    def test_a_symbolic_link_is_not_followed(self):
        os.mkdir(os.path.dirname(self.path))
        victim = os.path.join(self.folder, 'victim.sock')
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(victim)
        os.symlink(victim, self.path)
        server = hook_server.HookServer(None, DEST, self.path)
        error = self.assertRaises(exception.HookSocketError, server.start)
        self.assertIn('is a symbolic link', str(error))
        self.assertTrue(os.path.islink(self.path))
        self.assertTrue(stat.S_ISSOCK(os.lstat(victim).st_mode))

    def test_a_second_manager_on_a_live_socket_is_refused(self):
        self.serve()
        second = hook_server.HookServer(None, DEST, self.path)
        error = self.assertRaises(exception.HookSocketError, second.start)
        self.assertIn('another process answers there already', str(error))
        self.assertTrue(self.ask(libvirt_hook.request_header('d') +
                                 xml(PLAIN_XML)).startswith(b'PASS '))

    def test_relative_and_overlong_paths_are_refused(self):
        for path, phrase in (('run/hook.sock', 'not an absolute path'),
                             ('/' + 'x' * 200, 'longer than')):
            self.assertRaises(exception.HookSocketError,
                              hook_server.check_path, path)
            error = self.assertRaises(exception.HookSocketError,
                                      hook_server.check_path, path)
            self.assertIn(phrase, str(error))

    def test_requests_that_are_not_the_hooks(self):
        self.serve()
        header = libvirt_hook.request_header('d')
        for request, phrase in (
                (b'GET / HTTP/1.0\r\n\r\n', b'REFUSE unsupported request'),
                (b'x' * 200, b'REFUSE not a korora-libvirt-hook request'),
                (b'korora-libvirt-hook 2 d\n<domain/>',
                 b'REFUSE unsupported request'),
                (header, b'REFUSE no domain XML'),
                (header + b' ' * (protocol.MAX_XML_BYTES + 1),
                 b'REFUSE the incoming domain XML is larger than')):
            answer = self.ask(request)
            self.assertTrue(answer.startswith(phrase), answer[:200])
            self.assertTrue(answer.endswith(b'\n'))
            self.assertEqual(1, answer.count(b'\n'))
        # A connection that says nothing gets nothing, and no warning.
        self.assertEqual(b'', self.ask(b''))

    def test_a_request_that_never_ends_is_bounded(self):
        self.serve(libvirt_hook_timeout=0.5)
        answer = self.ask(libvirt_hook.request_header('d') + b'<dom',
                          shut=False)
        self.assertEqual(b'REFUSE the request was not complete within '
                         b'0.5 s ([korora] libvirt_hook_timeout)\n', answer)

    def test_an_unexpected_error_refuses_with_the_traceback_in_the_log(self):
        self.serve()
        self.useFixture(fixtures.MockPatch(
            'korora_nova.vtpm_manager.admission.decide',
            side_effect=RuntimeError('a detail\nfor the log only')))
        answer = self.ask(libvirt_hook.request_header('d') + xml())
        self.assertEqual(b'REFUSE unexpected error in korora-vtpm-manager '
                         b'(RuntimeError): see its log\n', answer)
        self.assertIn('Traceback', self.log.output)
        self.assertIn('for the log only', self.log.output)


class TestStandardLibraryOnly(HookTestCase):
    """The hook process imports nothing but the standard library and
    korora's stdlib-only modules: no oslo.*, no SQLAlchemy."""

    HEAVY = ('oslo_config', 'oslo_log', 'oslo_db', 'oslo_utils',
             'oslo_messaging', 'sqlalchemy', 'eventlet', 'nova',
             'korora_nova.db', 'korora_nova.conf', 'korora_nova.migration')

    def heavy(self, names):
        return sorted(name for name in names
                      if name.startswith(self.HEAVY))

    def test_sys_modules_after_a_whole_run(self):
        self.record(states.TRANSFERRING)
        path = self.serve()
        found = os.path.join(self.folder, 'modules.json')
        code = ('import json, sys\n'
                'from korora_nova.cmd import libvirt_hook\n'
                'status = libvirt_hook.main(sys.argv[2:])\n'
                'json.dump([status, sorted(sys.modules)], '
                'open(sys.argv[1], "w"))\n')
        result = hook_process.run(
            [sys.executable, '-c', code, found, '--socket', path, DOMAIN,
             'migrate', 'begin', '-'], xml(), cwd=self.folder)
        self.assertEqual(0, result.status, result)
        with open(found) as stream:
            status, modules = json.load(stream)
        self.assertEqual(0, status)
        self.assertIn('korora_nova.libvirt_hook.client', modules)
        self.assertEqual([], self.heavy(modules))

    def test_importtime(self):
        result = hook_process.run(
            [sys.executable, '-X', 'importtime', '-m',
             'korora_nova.cmd.libvirt_hook', '--socket', self.serve(),
             DOMAIN, 'migrate', 'begin', '-'], xml(PLAIN_XML),
            cwd=self.folder)
        self.assertEqual(0, result.status, result)
        imported = [line.split('|')[-1].strip()
                    for line in result.stderr.splitlines()
                    if line.startswith('import time:')]
        self.assertIn('korora_nova.libvirt_hook.client', imported)
        self.assertEqual([], self.heavy(imported))


def records_row(state, dest):
    """An approval as a vTPM manager holds it."""
    return vtpm_manager.Approval(MIGRATION, INSTANCE, SOURCE, dest, state,
                                 time.time() + 300)
