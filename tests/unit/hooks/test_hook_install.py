"""Installing korora-libvirt-hook into libvirt's hooks folders: the
module on temporary folders, and ``korora-manage libvirt-hook`` as an
operator runs it, down to the installed script run as libvirt runs it."""

import json
import os
import stat
import subprocess
import sys
from unittest import mock

import fixtures

from korora_nova import exception
from korora_nova.libvirt_hook import client
from korora_nova.libvirt_hook import install as hook_install
from tests import base
from korora_nova.demo import services
from tests.fixtures import hook_process

KORORA_MANAGE = os.path.join(os.path.dirname(sys.executable),
                             'korora-manage')
COMMAND_TIMEOUT = 120
OPERATORS_HOOK = '#!/bin/sh\n# the operator\'s own hook\nexit 0\n'


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def read(path):
    with open(path) as stream:
        return stream.read()


def write(path, text, file_mode=0o755):
    with open(path, 'w') as stream:
        stream.write(text)
    os.chmod(path, file_mode)


class HooksFolderTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.top = self.useFixture(fixtures.TempDir()).path
        self.hooks = os.path.join(self.top, 'hooks')
        os.mkdir(self.hooks)
        self.socket = os.path.join(self.top, 'run', 'libvirt-hook.sock')
        self.config = os.path.join(self.top, 'korora.conf')
        write(self.config, '[DEFAULT]\nhost = compute-2\n[korora]\n'
                           'libvirt_hook_socket = %s\n'
                           'libvirt_hook_timeout = 7.5\n' % self.socket,
              0o644)
        self.qemu = os.path.join(self.hooks, 'qemu.d', 'korora')
        self.libxl = os.path.join(self.hooks, 'libxl.d', 'korora')

    def install(self, **kwargs):
        kwargs.setdefault('socket_path', self.socket)
        kwargs.setdefault('timeout', 7.5)
        return hook_install.install(hooks_dir=self.hooks, **kwargs)

    def script(self, folder='qemu.d', **kwargs):
        """What install() writes into folder."""
        return hook_install.hook_script(kwargs.get('socket_path',
                                                   self.socket),
                                        kwargs.get('timeout', 7.5),
                                        folder=folder)

    def listing(self):
        """Every name below the hooks folder, with its mode and content."""
        found = {}
        for folder, folders, files in os.walk(self.hooks):
            for name in folders + files:
                path = os.path.join(folder, name)
                content = None
                if os.path.isfile(path) and not os.path.islink(path):
                    content = read(path)
                found[os.path.relpath(path, self.hooks)] = (
                    mode(path), os.path.islink(path), content)
        return found


class TestHookScript(HooksFolderTestCase):

    def test_the_script_execs_the_hook_with_the_socket_and_timeout(self):
        text = hook_install.hook_script('/run/korora/libvirt-hook.sock', 10,
                                        '/usr/bin/korora-libvirt-hook')
        lines = text.splitlines()
        self.assertEqual('#!/bin/sh', lines[0])
        self.assertIn(hook_install.MARKER, lines)
        # Only migrate starts Python; the marker stays ahead of it.
        self.assertEqual(['case "$2" in', '    migrate) ;;',
                          '    *) exit 0 ;;', 'esac'], lines[-5:-1])
        self.assertLess(lines.index(hook_install.MARKER), len(lines) - 5)
        self.assertEqual('exec /usr/bin/korora-libvirt-hook --socket '
                         '/run/korora/libvirt-hook.sock --timeout 10 "$@"',
                         lines[-1])
        self.assertTrue(text.endswith('\n'))

    def test_the_libxl_script_checks_at_prepare_with_an_incoming_dir(self):
        # libvirt 9.0's libxl driver gives migrate begin no XML: the
        # hook notes the domain then and checks at prepare begin.
        text = hook_install.hook_script('/run/korora/libvirt-hook.sock', 10,
                                        '/usr/bin/korora-libvirt-hook',
                                        folder='libxl.d')
        lines = text.splitlines()
        self.assertEqual(['case "$2" in', '    migrate) ;;',
                          '    prepare) [ -e /run/korora/libxl-incoming/'
                          '"$(printf %s "$1" | sha256sum | cut -d" " -f1)" ]'
                          ' || exit 0 ;;',
                          '    *) exit 0 ;;', 'esac'], lines[-6:-1])
        self.assertEqual('exec /usr/bin/korora-libvirt-hook --socket '
                         '/run/korora/libvirt-hook.sock --timeout 10 '
                         '--incoming-dir /run/korora/libxl-incoming "$@"',
                         lines[-1])

    def test_the_libxl_script_runs_python_at_prepare_only_with_a_note(self):
        # A stand-in hook that records that it ran; the script finds
        # the note the real hook writes (client.mark_incoming).
        record = os.path.join(self.top, 'record')
        stand_in = os.path.join(self.top, 'hook')
        write(stand_in, '#!/bin/sh\necho "$@" >>%s\n' % record)
        sock = os.path.join(self.top, 'run', 'libvirt-hook.sock')
        script = os.path.join(self.top, 'korora')
        write(script, hook_install.hook_script(sock, 2.5, stand_in,
                                               folder='libxl.d'))

        def prepare(name):
            return hook_process.run([script, name, 'prepare', 'begin', '-'],
                                    b'', env={'PATH': '/usr/bin:/bin'},
                                    cwd='/')

        self.assertEqual(0, prepare("dom 'one'").status)
        self.assertFalse(os.path.exists(record))
        client.mark_incoming(hook_install.incoming_dir(sock), "dom 'one'")
        self.assertEqual(0, prepare("dom 'one'").status)
        self.assertIn("dom 'one' prepare begin -", read(record))
        # Another domain's note does not count.
        os.unlink(record)
        self.assertEqual(0, prepare('dom two').status)
        self.assertFalse(os.path.exists(record))

    def test_default_command_is_the_console_script_or_the_module(self):
        command = hook_install.default_command()
        self.assertTrue(os.path.isabs(command[0]), command)
        script = os.path.join(os.path.dirname(sys.executable),
                              'korora-libvirt-hook')
        if os.access(script, os.X_OK):
            self.assertEqual([script], command)
        else:
            self.assertEqual(['-m', 'korora_nova.cmd.libvirt_hook'],
                             command[1:])
        self.assertIn(command[0], hook_install.hook_script(self.socket, 10))

    def test_a_relative_or_empty_socket_is_refused(self):
        for path in ('', 'run/libvirt-hook.sock', None):
            error = self.assertRaises(exception.HookInstallError,
                                      hook_install.hook_script, path, 10,
                                      '/bin/hook')
            self.assertIn('libvirt_hook_socket', str(error))

    def test_a_newline_in_a_path_is_refused(self):
        self.assertRaises(exception.HookInstallError,
                          hook_install.hook_script, '/a\nb', 10, '/bin/hook')
        self.assertRaises(exception.HookInstallError,
                          hook_install.hook_script, '/s', 10, '/bin/a\nb')

    def test_arguments_stdin_and_quoting_reach_the_hook_unchanged(self):
        # A stand-in hook that records what it got; the paths have a
        # space and a quote, which the script must keep whole.
        record = os.path.join(self.top, 'record')
        stand_in = os.path.join(self.top, "stand in's hook")
        write(stand_in, '#!%s\nimport json, sys\n'
                        'json.dump([sys.argv[1:], sys.stdin.read()], '
                        'open(%r, "w"))\n' % (sys.executable, record))
        sock = os.path.join(self.top, "my 'korora'.sock")
        script = os.path.join(self.top, 'korora')
        write(script, hook_install.hook_script(sock, 2.5, stand_in))
        # Other operations never start it. (No stdin: the script ends
        # without reading it, and writing into a pipe nobody reads would
        # race with its exit.)
        for operation in ('prepare', 'start', 'started', 'release'):
            result = hook_process.run(
                [script, 'dom 1', operation, 'begin', '-'], b'',
                env={'PATH': '/usr/bin:/bin'}, cwd='/')
            self.assertEqual(0, result.status, result)
            self.assertFalse(os.path.exists(record))
        result = hook_process.run([script, 'dom 1', 'migrate', 'begin', '-'],
                                  b'<domain/>', env={'PATH': '/usr/bin:/bin'},
                                  cwd='/')
        self.assertEqual(0, result.status, result)
        self.assertEqual(b'', result.stdout)
        with open(record) as stream:
            self.assertEqual(
                [['--socket', sock, '--timeout', '2.5', 'dom 1', 'migrate',
                  'begin', '-'], '<domain/>'], json.load(stream))


class TestInstall(HooksFolderTestCase):

    def test_install_writes_both_folders(self):
        outcomes = self.install()
        self.assertEqual([(self.qemu, 'installed', True),
                          (self.libxl, 'installed', True)],
                         [tuple(outcome) for outcome in outcomes])
        for path, folder in ((self.qemu, 'qemu.d'),
                             (self.libxl, 'libxl.d')):
            self.assertEqual(self.script(folder), read(path))
            self.assertEqual(0o755, mode(path))
            self.assertEqual(0o755, mode(os.path.dirname(path)))
        self.assertEqual({'qemu.d', 'libxl.d', 'qemu.d/korora',
                          'libxl.d/korora'}, set(self.listing()))

    def test_folders_are_0755_whatever_the_umask(self):
        old = os.umask(0o077)
        try:
            self.install()
        finally:
            os.umask(old)
        self.assertEqual(0o755, mode(os.path.join(self.hooks, 'qemu.d')))
        self.assertEqual(0o755, mode(self.qemu))

    def test_the_hooks_folder_itself_is_created(self):
        self.hooks = os.path.join(self.top, 'new-hooks')
        self.install(hypervisor='qemu')
        self.assertEqual(0o755, mode(self.hooks))
        self.assertTrue(os.path.isfile(os.path.join(self.hooks, 'qemu.d',
                                                    'korora')))

    def test_one_hypervisor_only(self):
        self.install(hypervisor='qemu')
        self.assertEqual({'qemu.d', 'qemu.d/korora'}, set(self.listing()))
        self.install(hypervisor='libxl')
        self.assertTrue(os.path.isfile(self.libxl))

    def test_a_second_install_changes_nothing(self):
        self.install()
        before = os.stat(self.qemu)
        outcomes = self.install()
        self.assertEqual([(self.qemu, hook_install.CURRENT, False),
                          (self.libxl, hook_install.CURRENT, False)],
                         [tuple(outcome) for outcome in outcomes])
        after = os.stat(self.qemu)
        self.assertEqual((before.st_ino, before.st_mtime_ns),
                         (after.st_ino, after.st_mtime_ns))

    def test_other_files_in_the_folders_are_left_alone(self):
        os.mkdir(os.path.join(self.hooks, 'qemu.d'), 0o700)
        write(os.path.join(self.hooks, 'qemu.d', 'operator'), OPERATORS_HOOK,
              0o750)
        write(os.path.join(self.hooks, 'qemu'), OPERATORS_HOOK)
        before = self.listing()
        self.install()
        self.install(timeout=3)
        hook_install.remove(self.hooks)
        after = self.listing()
        for name in ('qemu.d/operator', 'qemu'):
            self.assertEqual(before[name], after[name])
        # An existing folder keeps its mode; ours are gone, nothing else.
        self.assertEqual(0o700, mode(os.path.join(self.hooks, 'qemu.d')))
        self.assertEqual({'qemu', 'qemu.d', 'qemu.d/operator', 'libxl.d'},
                         set(after))

    def test_an_outdated_hook_is_replaced(self):
        self.install(timeout=3)
        outcomes = self.install()
        self.assertEqual(['installed', 'installed'],
                         [outcome.state for outcome in outcomes])
        self.assertIn('--timeout 7.5 "$@"', read(self.qemu))

    def test_a_hook_that_lost_its_mode_is_rewritten(self):
        self.install()
        os.chmod(self.qemu, 0o644)
        self.assertTrue(self.install()[0].changed)
        self.assertEqual(0o755, mode(self.qemu))

    def test_a_foreign_korora_file_is_refused_without_force(self):
        os.mkdir(os.path.join(self.hooks, 'libxl.d'))
        write(self.libxl, OPERATORS_HOOK)
        error = self.assertRaises(exception.HookInstallError,
                                  self.install)
        self.assertIn('not written by korora-nova', str(error))
        self.assertIn('--force', str(error))
        self.assertEqual(OPERATORS_HOOK, read(self.libxl))
        # Refused before anything was written anywhere.
        self.assertFalse(os.path.exists(self.qemu))

    def test_force_replaces_a_foreign_file(self):
        os.mkdir(os.path.join(self.hooks, 'qemu.d'))
        write(self.qemu, OPERATORS_HOOK)
        self.install(force=True)
        self.assertEqual(self.script(), read(self.qemu))

    def test_a_symlink_named_korora_is_never_followed(self):
        victim = os.path.join(self.top, 'victim')
        write(victim, 'precious\n', 0o600)
        os.mkdir(os.path.join(self.hooks, 'qemu.d'))
        os.symlink(victim, self.qemu)
        self.assertRaises(exception.HookInstallError, self.install)
        self.install(force=True)
        self.assertFalse(os.path.islink(self.qemu))
        self.assertEqual('precious\n', read(victim))
        self.assertEqual(0o600, mode(victim))

    def test_a_symlink_to_our_own_script_is_not_ours(self):
        elsewhere = os.path.join(self.top, 'elsewhere')
        write(elsewhere, self.script())
        os.mkdir(os.path.join(self.hooks, 'qemu.d'))
        os.symlink(elsewhere, self.qemu)
        self.assertRaises(exception.HookInstallError, self.install)
        outcomes = hook_install.remove(self.hooks)
        self.assertEqual(hook_install.FOREIGN, outcomes[0].state)
        self.assertTrue(os.path.islink(self.qemu))
        self.assertTrue(os.path.exists(elsewhere))

    def test_a_symlinked_folder_is_refused(self):
        target = os.path.join(self.top, 'target')
        os.mkdir(target)
        os.symlink(target, os.path.join(self.hooks, 'qemu.d'))
        error = self.assertRaises(exception.HookInstallError,
                                  self.install)
        self.assertIn('symbolic link', str(error))
        self.assertEqual([], os.listdir(target))

    def test_a_symlinked_hooks_folder_is_refused(self):
        link = os.path.join(self.top, 'link')
        os.symlink(self.hooks, link)
        self.hooks = link
        error = self.assertRaises(exception.HookInstallError,
                                  self.install)
        self.assertIn('symbolic link', str(error))

    def test_a_korora_folder_is_not_replaced(self):
        os.makedirs(self.qemu)
        error = self.assertRaises(exception.HookInstallError,
                                  self.install, force=True)
        self.assertIn('is a folder', str(error))

    def test_hooks_dir_that_is_a_file(self):
        self.hooks = self.config
        error = self.assertRaises(exception.HookInstallError,
                                  self.install)
        self.assertIn('is not a folder', str(error))

    def test_hooks_dir_whose_parent_is_missing(self):
        self.hooks = os.path.join(self.top, 'no', 'hooks')
        error = self.assertRaises(exception.HookInstallError,
                                  self.install)
        self.assertIn('is libvirt installed?', str(error))

    def test_an_empty_socket_is_refused_before_anything_is_written(self):
        error = self.assertRaises(exception.HookInstallError,
                                  self.install, socket_path='')
        self.assertIn('libvirt_hook_socket', str(error))
        self.assertEqual({}, self.listing())

    def test_no_permission(self):
        denied = PermissionError(13, 'Permission denied')
        with mock.patch('os.mkdir', side_effect=denied):
            error = self.assertRaises(exception.HookInstallError,
                                      self.install)
        self.assertIn('qemu.d: Permission denied', str(error))

    def test_a_failed_rename_keeps_the_old_hook_and_no_temporary(self):
        self.install(timeout=3)
        old = read(self.qemu)
        with mock.patch('os.rename', side_effect=OSError(28, 'No space')):
            error = self.assertRaises(exception.HookInstallError,
                                      self.install)
        self.assertIn('No space', str(error))
        self.assertEqual(old, read(self.qemu))
        self.assertEqual(['korora'],
                         os.listdir(os.path.join(self.hooks, 'qemu.d')))


class TestRemoveAndStatus(HooksFolderTestCase):

    def states(self, **kwargs):
        kwargs.setdefault('socket_path', self.socket)
        kwargs.setdefault('timeout', 7.5)
        return [outcome.state for outcome
                in hook_install.status(hooks_dir=self.hooks, **kwargs)]

    def test_status(self):
        self.assertEqual([hook_install.NO_FOLDER] * 2, self.states())
        self.install(hypervisor='qemu')
        self.assertEqual([hook_install.CURRENT, hook_install.NO_FOLDER],
                         self.states())
        self.assertEqual([hook_install.OUTDATED],
                         self.states(timeout=3, hypervisor='qemu'))
        self.assertEqual([hook_install.OUTDATED],
                         self.states(socket_path='/run/other.sock',
                                     hypervisor='qemu'))
        os.chmod(self.qemu, 0o644)
        self.assertEqual(['installed but not executable (mode 0644)'],
                         self.states(hypervisor='qemu'))
        os.mkdir(os.path.join(self.hooks, 'libxl.d'))
        self.assertEqual(hook_install.ABSENT, self.states()[1])
        write(self.libxl, OPERATORS_HOOK)
        self.assertEqual(hook_install.FOREIGN, self.states()[1])

    def test_status_without_a_hooks_folder(self):
        self.hooks = os.path.join(self.top, 'none')
        self.assertEqual([hook_install.NO_FOLDER] * 2, self.states())

    def test_remove_removes_only_ours(self):
        self.install(hypervisor='qemu')
        os.mkdir(os.path.join(self.hooks, 'libxl.d'))
        write(self.libxl, OPERATORS_HOOK)
        outcomes = hook_install.remove(self.hooks)
        self.assertEqual([(self.qemu, 'removed', True),
                          (self.libxl, hook_install.FOREIGN, False)],
                         [tuple(outcome) for outcome in outcomes])
        self.assertFalse(os.path.lexists(self.qemu))
        self.assertEqual(OPERATORS_HOOK, read(self.libxl))

    def test_remove_twice_and_without_folders(self):
        self.install()
        hook_install.remove(self.hooks)
        outcomes = hook_install.remove(self.hooks)
        self.assertEqual([hook_install.ABSENT] * 2,
                         [outcome.state for outcome in outcomes])
        self.assertFalse(any(outcome.changed for outcome in outcomes))
        self.hooks = os.path.join(self.top, 'none')
        self.assertEqual([hook_install.NO_FOLDER] * 2,
                         [outcome.state for outcome
                          in hook_install.remove(self.hooks)])

    def test_an_edited_hook_of_ours_is_still_ours(self):
        self.install()
        with open(self.qemu, 'a') as stream:
            stream.write('# edited\n')
        self.assertEqual(hook_install.OUTDATED, self.states()[0])
        self.assertEqual('removed', hook_install.remove(self.hooks)[0].state)


class TestCommand(HooksFolderTestCase, hook_process.HookAssertions):
    """korora-manage libvirt-hook, run as an operator runs it."""

    def manage(self, *args, config=None):
        command = [KORORA_MANAGE]
        if config:
            command += ['--config-file', config]
        env = hook_process.hook_environment()
        process = subprocess.run(command + list(args), capture_output=True,
                                 text=True, timeout=COMMAND_TIMEOUT, env=env,
                                 cwd=self.top)
        return process

    def assertOneLineError(self, process, *phrases):
        self.assertEqual(2, process.returncode, process)
        self.assertTrue(process.stderr.startswith('korora-manage: '),
                        process.stderr)
        self.assertEqual(1, process.stderr.count('\n'), process.stderr)
        self.assertNotIn('Traceback', process.stderr)
        for phrase in phrases:
            self.assertIn(phrase, process.stderr)

    def test_install_status_remove(self):
        installed = self.manage('libvirt-hook', 'install', '--hooks-dir',
                                self.hooks, config=self.config)
        self.assertEqual(0, installed.returncode, installed)
        self.assertIn('%s: installed' % self.qemu, installed.stdout)
        self.assertIn('%s: installed' % self.libxl, installed.stdout)
        self.assertIn('only when the daemon starts: restart libvirtd',
                      installed.stdout)
        self.assertEqual('', installed.stderr)

        again = self.manage('libvirt-hook', 'install', '--hooks-dir',
                            self.hooks, config=self.config)
        self.assertEqual(0, again.returncode, again)
        self.assertIn('nothing to do', again.stdout)
        self.assertNotIn('restart', again.stdout)

        status = self.manage('libvirt-hook', 'status', '--hooks-dir',
                             self.hooks, config=self.config)
        self.assertEqual(0, status.returncode, status)
        self.assertEqual(['%s: %s' % (path, hook_install.CURRENT)
                          for path in (self.qemu, self.libxl)],
                         status.stdout.splitlines())

        removed = self.manage('libvirt-hook', 'remove', '--hooks-dir',
                              self.hooks, '--hypervisor', 'libxl')
        self.assertEqual(0, removed.returncode, removed)
        self.assertIn('%s: removed' % self.libxl, removed.stdout)
        self.assertIn('restart libvirtd', removed.stdout)
        status = self.manage('libvirt-hook', 'status', '--hooks-dir',
                             self.hooks, config=self.config)
        self.assertEqual(1, status.returncode, status)
        self.assertIn('%s: %s' % (self.libxl, hook_install.ABSENT),
                      status.stdout)

    def test_errors_are_one_line(self):
        self.assertOneLineError(
            self.manage('libvirt-hook', 'install', '--hooks-dir',
                        self.config),
            'is not a folder')
        os.mkdir(os.path.join(self.hooks, 'qemu.d'))
        write(self.qemu, OPERATORS_HOOK)
        self.assertOneLineError(
            self.manage('libvirt-hook', 'install', '--hooks-dir',
                        self.hooks),
            'not written by korora-nova', '--force')
        self.assertEqual(OPERATORS_HOOK, read(self.qemu))
        write(self.config, '[korora]\nlibvirt_hook_socket =\n', 0o644)
        self.assertOneLineError(
            self.manage('libvirt-hook', 'install', '--hooks-dir',
                        self.hooks, '--hypervisor', 'libxl',
                        config=self.config),
            'libvirt_hook_socket')
        self.assertFalse(os.path.exists(self.libxl))

    def test_status_says_outdated_when_the_options_changed(self):
        installed = self.manage('libvirt-hook', 'install', '--hooks-dir',
                                self.hooks, config=self.config)
        self.assertEqual(0, installed.returncode, installed)
        with open(self.config, 'a') as stream:
            stream.write('libvirt_hook_timeout = 4\n')
        status = self.manage('libvirt-hook', 'status', '--hooks-dir',
                             self.hooks, config=self.config)
        self.assertEqual(1, status.returncode, status)
        self.assertEqual(['%s: %s' % (path, hook_install.OUTDATED)
                          for path in (self.qemu, self.libxl)],
                         status.stdout.splitlines())
        again = self.manage('libvirt-hook', 'install', '--hooks-dir',
                            self.hooks, config=self.config)
        self.assertIn('--timeout 4 "$@"', read(self.qemu))
        self.assertIn('restart libvirtd', again.stdout)

    def test_the_installed_hook_refuses_as_libvirt_runs_it(self):
        """The operator's steps, then libvirt's call: an empty verifier
        database (no migration approved) refuses an incoming vTPM guest.
        """
        database = os.path.join(self.top, 'korora.sqlite')
        with open(self.config, 'a') as stream:
            stream.write('\n[korora_database]\nconnection = sqlite:///%s\n'
                         % database)
        synced = self.manage('db', 'sync', config=self.config)
        self.assertEqual(0, synced.returncode, synced)
        self.assertIn('database at revision', synced.stdout)
        installed = self.manage('libvirt-hook', 'install', '--hooks-dir',
                                self.hooks, '--hypervisor', 'qemu',
                                config=self.config)
        self.assertEqual(0, installed.returncode, installed)
        # korora-vtpm-manager's side, with the same options.
        self.useFixture(services.HookServerFixture(
            'compute-2', path=self.socket,
            connection='sqlite:///' + database))

        # libvirt: the script by its path, a minimal environment, cwd /.
        result = hook_process.run(
            [self.qemu, hook_process.DOMAIN, 'migrate', 'begin', '-'],
            hook_process.xml(), env={'PATH': '/usr/bin:/bin'}, cwd='/')
        self.assertRefuses(result, 'incoming live migration of domain %s '
                           'refused' % hook_process.DOMAIN,
                           'no Korora-approved migration of instance %s to '
                           'compute-2' % hook_process.INSTANCE)

        # Every other call passes at once, without the database.
        result = hook_process.run(
            [self.qemu, hook_process.DOMAIN, 'start', 'begin', '-'],
            hook_process.xml(), env={'PATH': '/usr/bin:/bin'}, cwd='/')
        self.assertPasses(result)
