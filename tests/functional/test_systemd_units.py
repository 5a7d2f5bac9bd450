"""The systemd units korora-nova ships (etc/systemd/).

systemd-analyze checks them as systemd would load them, offline (systemd
is not PID 1 here): any warning about them fails. Then each unit's
ExecStart, run as written, starts its daemon: in a mount namespace of
its own (``unshare --mount``), where /etc, /var/lib and /usr/local/bin
are overlays of the machine's (the daemon's /etc/korora/korora.conf, its
StateDirectory and the console script exist only there) and /run is a
folder of the test's with the unit's RuntimeDirectory made in it, as
systemd makes it before ExecStart. The sandbox options themselves
(ProtectSystem= and the like) need systemd as PID 1 and are not applied.
"""

import configparser
import os
import shlex
import shutil
import stat
import subprocess
import time

import fixtures
from testtools import content

from korora_nova.conf import korora as korora_conf
from korora_nova.demo import services
from tests import base
from tests.fixtures import daemons
from tests.fixtures import hook_process
from tests.fixtures import rabbitmq

# korora-manage db sync, at most.
COMMAND_TIMEOUT = 60.0

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
UNITS = os.path.join(REPO, 'etc', 'systemd')
MANAGER = 'korora-vtpm-manager'
VERIFIER = 'korora-verifier'
HOST = 'compute-unit'
# systemd-analyze security's exposure (0-100): the manager stays root for
# libvirt's files, the verifier runs as a user of its own.
EXPOSURE = {MANAGER: 30, VERIFIER: 20}
# Overlays of the machine's folders in the namespace (/run is replaced).
OVERLAYS = ('/etc', '/var/lib', '/usr/local/bin')
WAIT = 60.0


def read_unit(name):
    """The unit file: {section: {key: value}} (ours set each key once)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read(os.path.join(UNITS, name + '.service'), encoding='utf-8')
    return parser


def systemd_analyze():
    return shutil.which('systemd-analyze')


def unit_root(top, units, executables=()):
    """A file system root for systemd-analyze --root: the units in
    /etc/systemd/system, and stand-ins for the executables (verify checks
    only that they are there and executable)."""
    system = os.path.join(top, 'etc', 'systemd', 'system')
    os.makedirs(system)
    for name, path in units:
        shutil.copy(path, os.path.join(system, name))
    for path in executables:
        target = os.path.join(top, path.lstrip('/'))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'w') as stream:
            stream.write('#!/bin/sh\n')
        os.chmod(target, 0o755)
    return top


def exec_start(unit):
    return shlex.split(unit['Service']['ExecStart'])


class TestUnitFiles(base.TestCase):

    def setUp(self):
        super().setUp()
        if systemd_analyze() is None:
            self.skipTest('systemd-analyze is not installed (bindep.txt: '
                          'systemd)')
        self.top = self.useFixture(fixtures.TempDir()).path

    def analyze(self, *args):
        return subprocess.run([systemd_analyze()] + list(args),
                              capture_output=True, text=True, timeout=60)

    def shipped_root(self):
        units = [(name, os.path.join(UNITS, name))
                 for name in sorted(os.listdir(UNITS))]
        return unit_root(self.top, units, [
            exec_start(read_unit(name[:-len('.service')]))[0]
            for name, _ in units])

    def test_systemd_loads_them_without_a_warning(self):
        self.assertEqual(['%s.service' % VERIFIER, '%s.service' % MANAGER],
                         sorted(os.listdir(UNITS)))
        root = self.shipped_root()
        result = self.analyze('verify', '--man=no', '--recursive-errors=no',
                              '--root=%s' % root, MANAGER + '.service',
                              VERIFIER + '.service')
        self.assertEqual((0, '', ''), (result.returncode, result.stdout,
                                       result.stderr))

    def test_a_mistake_in_a_unit_is_reported(self):
        # What the test above would see: a bad value, an unknown key.
        with open(os.path.join(UNITS, MANAGER + '.service')) as stream:
            text = stream.read()
        broken = os.path.join(self.top, 'broken')
        with open(broken, 'w') as stream:
            stream.write(text.replace('RestartSec=5', 'RestartSec=5x')
                         .replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'))
        root = unit_root(os.path.join(self.top, 'root'),
                         [(MANAGER + '.service', broken)],
                         [exec_start(read_unit(MANAGER))[0]])
        result = self.analyze('verify', '--man=no', '--recursive-errors=no',
                              '--root=%s' % root, MANAGER + '.service')
        self.assertNotEqual(0, result.returncode)
        self.assertIn("Failed to parse sec value, ignoring: 5x",
                      result.stderr)
        self.assertIn("Unknown key 'NoNewPrivilege'", result.stderr)

    def test_their_exposure(self):
        root = self.shipped_root()
        for name, threshold in EXPOSURE.items():
            result = self.analyze('security', '--offline=yes',
                                  '--root=%s' % root,
                                  '--threshold=%d' % threshold,
                                  '--no-pager', name + '.service')
            self.assertEqual(0, result.returncode,
                             '%s: %s' % (name, result.stdout[-2000:]))
            self.assertIn('Overall exposure level for %s.service' % name,
                          result.stdout)

    def test_what_the_units_say(self):
        manager = read_unit(MANAGER)['Service']
        verifier = read_unit(VERIFIER)['Service']
        for unit in (manager, verifier):
            self.assertEqual('on-failure', unit['Restart'])
            self.assertEqual('5', unit['RestartSec'])
            self.assertEqual('strict', unit['ProtectSystem'])
            self.assertEqual('@system-service', unit['SystemCallFilter'])
            self.assertEqual('yes', unit['NoNewPrivileges'])
        # The manager's socket lies in its runtime folder, its state in
        # its state folder: korora-nova's defaults.
        socket_folder = os.path.dirname(korora_conf.LIBVIRT_HOOK_SOCKET)
        self.assertEqual('/run/' + manager['RuntimeDirectory'],
                         socket_folder)
        state_path = [opt for opt in korora_conf.host_trust_opts
                      if opt.name == 'state_path'][0].default
        self.assertEqual('/var/lib/' + manager['StateDirectory'], state_path)
        self.assertNotIn('User', manager)          # root, said why
        self.assertEqual('CAP_DAC_READ_SEARCH',
                         manager['CapabilityBoundingSet'])
        self.assertEqual('korora', verifier['User'])
        self.assertEqual('', verifier['CapabilityBoundingSet'])
        # The verifier's SQLite default lies in its own state folder,
        # which is not the manager's (root's) on a host with both.
        conf = korora_conf.cfg.ConfigOpts()
        korora_conf.register_opts(conf)
        conf([], project='korora-unit-test', default_config_files=[])
        self.assertEqual('sqlite:////var/lib/%s/korora.sqlite'
                         % verifier['StateDirectory'],
                         conf.korora_database.connection)
        self.assertNotEqual(manager['StateDirectory'],
                            verifier['StateDirectory'])


class UnitNamespace:
    """Where a unit's ExecStart runs as written: a mount namespace with
    overlays of /etc, /var/lib and /usr/local/bin whose upper layers are
    folders of top (what the test writes there exists only inside), and
    top/run over /run."""

    def __init__(self, top):
        self.top = top
        self.run = os.path.join(top, 'run')
        os.makedirs(self.run)

    def upper(self, mount_point):
        """The folder whose files appear below mount_point inside."""
        return os.path.join(self.top, 'upper' + mount_point.replace('/', '-'))

    def inside(self, path):
        """Where path of the namespace is seen from outside (the files the
        test or the daemon wrote there)."""
        if path.startswith('/run/'):
            return os.path.join(self.run, path[len('/run/'):])
        path = path.rstrip('/')
        for mount_point in OVERLAYS:
            if path.startswith(mount_point + '/'):
                return os.path.join(self.upper(mount_point),
                                    path[len(mount_point) + 1:])
        raise ValueError(path)

    def command(self, argv):
        lines = ['set -e']
        for mount_point in OVERLAYS:
            upper = self.upper(mount_point)
            work = upper + '.work'
            os.makedirs(upper, exist_ok=True)
            os.makedirs(work, exist_ok=True)
            lines.append('mount -t overlay overlay -o lowerdir=%s,upperdir=%s,'
                         'workdir=%s %s' % (mount_point, upper, work,
                                            mount_point))
        lines.append('mount --bind %s /run' % self.run)
        lines.append('exec "$@"')
        # unshare execs sh, which execs the daemon: one process, the one
        # systemd would start (KillMode=mixed signals it alone).
        return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                '\n'.join(lines), 'sh'] + list(argv)

    def write(self, path, text, mode):
        target = self.inside(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'w') as stream:
            stream.write(text)
        os.chmod(target, mode)

    def systemd_folder(self, path, mode):
        """RuntimeDirectory= or StateDirectory=, as systemd makes it
        before ExecStart."""
        target = self.inside(path)
        os.makedirs(target, exist_ok=True)
        os.chmod(target, mode)

    def console_script(self, path, name):
        """The unit's executable path, for the installed console script."""
        target = self.inside(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(daemons.console_script(name), target)


class TestExecStartAsWritten(base.TestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0 or shutil.which('unshare') is None:
            self.skipTest('a mount namespace needs root and unshare')
        probe = subprocess.run(['unshare', '--mount', 'true'],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest('unshare --mount is not permitted here: %s'
                          % probe.stderr.strip())
        self.top = self.useFixture(fixtures.TempDir()).path
        self.space = UnitNamespace(self.top)
        self.broker = rabbitmq.shared_broker()

    def start(self, name):
        argv = exec_start(read_unit(name))
        unit = read_unit(name)['Service']
        self.assertEqual(['--config-file', '/etc/korora/korora.conf'],
                         argv[1:])
        self.space.console_script(argv[0], name)
        self.space.systemd_folder('/var/lib/' + unit['StateDirectory'],
                                  int(unit['StateDirectoryMode'], 8))
        if 'RuntimeDirectory' in unit:
            self.space.systemd_folder('/run/' + unit['RuntimeDirectory'],
                                      int(unit['RuntimeDirectoryMode'], 8))
        log = os.path.join(self.top, name + '.log')
        daemon = daemons.Daemon(name, self.space.command(argv), log)
        self.useFixture(daemon)
        self.addOnException(lambda exc_info: self.addDetail(
            name, content.text_content(daemon.log()[-20000:])))
        return daemon

    def wait_for(self, what, daemon, probe):
        deadline = time.monotonic() + WAIT
        while not probe():
            if not daemon.running():
                self.fail('%s ended (%s) before %s:\n%s' % (
                    daemon.name, daemon.process.returncode, what,
                    daemon.log()[-6000:]))
            if time.monotonic() > deadline:
                self.fail('%s: not within %.0f s' % (what, WAIT))
            time.sleep(0.05)

    def stop(self, daemon):
        """systemctl stop: SIGTERM to the main process (KillMode=mixed)."""
        daemon.terminate()
        return daemon.process.wait(daemons.STOP_TIMEOUT)

    def test_the_vtpm_manager_serves_its_socket_in_its_runtime_folder(self):
        tpm = self.useFixture(services.SoftwareTPMFixture())
        keys = self.useFixture(services.VerifierKeysFixture())
        with open(keys.public_path) as stream:
            self.space.write('/etc/korora/verifier-public-key.pem',
                             stream.read(), 0o644)
        # The manual's file, with the defaults of the socket, the state
        # and the pinned key's path.
        self.space.write('/etc/korora/korora.conf', (
            '[DEFAULT]\nhost = %s\ntransport_url = %s\n\n'
            '[korora]\ntcti = %s\ninstance_state_backend = files\n'
            % (HOST, self.broker.url, tpm.tpm.tcti)), 0o640)
        socket_path = self.space.inside(korora_conf.LIBVIRT_HOOK_SOCKET)
        manager = self.start(MANAGER)
        self.wait_for('its socket', manager,
                      lambda: os.path.exists(socket_path))
        self.assertEqual(0o600, stat.S_IMODE(os.lstat(socket_path).st_mode))
        self.assertTrue(stat.S_ISSOCK(os.lstat(socket_path).st_mode))
        # It answers the libvirt hook there.
        result = hook_process.run(
            hook_process.hook_command() + [
                '--socket', socket_path, hook_process.DOMAIN, 'migrate',
                'begin', '-'], hook_process.xml())
        self.assertEqual(1, result.status, result)
        self.assertIn('no Korora-approved migration of instance %s to %s'
                      % (hook_process.INSTANCE, HOST), result.stderr)
        # Its state went to its StateDirectory (the default state_path).
        self.assertTrue(os.path.isfile(self.space.inside(
            '/var/lib/korora/self-measurement')))
        # systemctl stop: it ends cleanly and takes its socket away.
        self.assertEqual(0, self.stop(manager), manager.log()[-3000:])
        self.assertFalse(os.path.lexists(socket_path))

    def test_the_verifier_serves_with_its_default_database(self):
        keys = self.useFixture(services.VerifierKeysFixture())
        with open(keys.private_path) as stream:
            self.space.write('/etc/korora/verifier-signing-key.pem',
                             stream.read(), 0o600)
        self.space.write('/etc/korora/korora.conf', (
            '[DEFAULT]\nhost = verifier-unit\ntransport_url = %s\n'
            % self.broker.url), 0o640)
        unit = read_unit(VERIFIER)['Service']
        state = '/var/lib/' + unit['StateDirectory']
        self.space.systemd_folder(state, int(unit['StateDirectoryMode'], 8))
        # The operator's first step, korora-manage on the same file: the
        # schema, in the default database.
        synced = subprocess.run(
            self.space.command([daemons.console_script('korora-manage'),
                                '--config-file', '/etc/korora/korora.conf',
                                'db', 'sync']),
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
            env=hook_process.hook_environment())
        self.assertEqual(0, synced.returncode, synced.stderr[-3000:])
        self.assertEqual(['korora.sqlite'],
                         os.listdir(self.space.inside(state)))
        verifier = self.start(VERIFIER)
        self.wait_for('its worker', verifier,
                      lambda: 'serving topic korora-verifier' in
                      verifier.log())
        self.assertEqual(0, self.stop(verifier), verifier.log()[-3000:])
