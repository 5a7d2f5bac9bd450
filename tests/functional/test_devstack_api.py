"""korora-api and the Horizon plugin as the devstack plugin installs
them, with devstack's real functions (tests/fixtures/devstack.py) and a
real Keystone (tests/fixtures/keystone.py): the service user, service
and endpoint in Keystone's catalog, korora-api's own file, the uWSGI file
devstack's write_uwsgi_config makes, run by uWSGI as devstack's unit
says, reached through the catalog and Apache's part (mod_proxy_uwsgi:
tests/fixtures/uwsgi_proxy.py) with real tokens; the verifier trusting
korora-api's key; the Horizon files; unstack and clean.
"""

import os
import stat

import requests
import yaml

from korora_nova.client import v1
from korora_nova import exception
from tests.fixtures import devstack
from tests.fixtures import keystone
from tests.fixtures import uwsgi_proxy
from tests.functional import test_devstack_plugin as plugin_tests

HOST = plugin_tests.HOST
BIN_DIR = plugin_tests.BIN_DIR
DASHBOARD = os.path.join(plugin_tests.REPO, 'korora_nova', 'dashboard')


def shipped_horizon_files():
    """(folder, name) of every file the plugin copies into Horizon."""
    files = []
    for folder in ('enabled', 'local_settings.d'):
        path = os.path.join(DASHBOARD, folder)
        if os.path.isdir(path):
            files += [(folder, name) for name in sorted(os.listdir(path))
                      if name.startswith('_9') and name.endswith('.py')]
    return files


class TestKororaAPIInDevstack(plugin_tests.DevstackTestCase):
    """A controller and compute node in one: the verifier, korora-api,
    Horizon, a vTPM manager on a software TPM."""

    SERVICES = ('mysql,rabbit,horizon,korora-vtpm-manager,'
                'korora-verifier,korora-api')

    def setUp(self):
        super().setUp()
        self.keystone = self.useFixture(keystone.KeystoneFixture())
        # Apache, proxying /korora to korora-api's uWSGI socket.
        self.apache = self.useFixture(uwsgi_proxy.UWSGIProxyFixture(
            '/korora'))

    def prepare(self, node):
        """What devstack did before the plugin's phases: Keystone up
        (its base URL and devstack's clouds.yaml), Horizon's checkout,
        Apache's site folder, uWSGI and the openstack command
        installed."""
        auth = self.keystone.auth_args('admin', 'system')
        auth.pop('system_scope')
        clouds = {'clouds': {'devstack-system-admin': {
            'auth': auth, 'system_scope': 'all', 'region_name': 'RegionOne',
            'identity_api_version': 3}}}
        folder = node.path('home', '.config', 'openstack')
        os.makedirs(folder)
        with open(os.path.join(folder, 'clouds.yaml'), 'w') as stream:
            yaml.safe_dump(clouds, stream)
        os.makedirs(node.path('opt', 'horizon', 'openstack_dashboard',
                              'local', 'enabled'))
        os.makedirs(node.path('etc', 'apache2', 'sites-available'))
        for name in ('uwsgi', 'openstack'):
            os.symlink(os.path.join(BIN_DIR, name), node.path('bin', name))
        return 'KEYSTONE_SERVICE_URI=%s' % self.keystone.url[:-len('/v3')]

    def test_stack_registers_and_serves_korora_api(self):
        node = self.node(self.SERVICES, localrc=(
            'KORORA_API_URL=%s' % self.apache.url,))
        self.apache.socket_path = node.path('run', 'uwsgi',
                                            'korora-api.socket')
        keystone_uri = self.prepare(node)
        node.run(keystone_uri, *devstack.STACK)
        etc = node.path('etc', 'korora')
        self.check_catalog()
        self.check_api_files(node, etc)
        self.check_answers()
        self.check_horizon_files(node)

        node.run(*devstack.UNSTACK)
        self.assertIn(['stop', 'devstack@korora-api.service'],
                      node.systemctl())
        self.assertIsNone(node.pid('korora-api'))
        self.check_clean(node)
        self.assertFalse(os.path.exists(node.path(
            'etc', 'apache2', 'sites-available', 'korora-api.conf')))
        self.assertEqual([['disable_apache_site', 'korora-api']],
                         node.calls('disable_apache_site'))
        for folder, name in shipped_horizon_files() + [
                ('local_settings.d', '_9011_korora_verifier_keys.py')]:
            self.assertFalse(os.path.exists(node.path(
                'opt', 'horizon', 'openstack_dashboard', 'local', folder,
                name)), name)

    def check_catalog(self):
        client = self.keystone.admin_client()
        services = client.services.list(type='korora')
        self.assertEqual(['korora'], [service.name for service in services])
        endpoints = client.endpoints.list(service=services[0])
        self.assertEqual([('public', 'RegionOne', self.apache.url)],
                         [(endpoint.interface, endpoint.region, endpoint.url)
                          for endpoint in endpoints])
        user = client.users.find(name='korora')
        service_project = client.projects.find(name=keystone.SERVICE_PROJECT)
        roles = {role.id: role.name for role in client.roles.list()}
        assigned = client.role_assignments.list(user=user,
                                                project=service_project)
        self.assertEqual(['service'],
                         [roles[item.role['id']] for item in assigned])

    def check_api_files(self, node, etc):
        api = plugin_tests.read_ini(os.path.join(etc, 'korora-api.conf'))
        self.assertEqual(['sqlite:///%s' % node.path('db', 'korora.sqlite')],
                         api['korora_database']['connection'])
        self.assertEqual([os.path.join(etc, 'api-signing-key.pem')],
                         api['korora_api']['signing_key'])
        authtoken = api['keystone_authtoken']
        self.assertEqual(['korora'], authtoken['username'])
        self.assertEqual(['secretservice'], authtoken['password'])
        self.assertEqual([self.keystone.url[:-len('/v3')]],
                         authtoken['auth_url'])
        verifier = plugin_tests.read_ini(os.path.join(etc, 'verifier.conf'))
        self.assertEqual([os.path.join(etc, 'api-public-key.pem')],
                         verifier['korora']['api_public_keys'])
        for name, mode in (('korora-api.conf', 0o600),
                           ('api-signing-key.pem', 0o600),
                           ('api-public-key.pem', 0o644)):
            self.assertEqual(mode, stat.S_IMODE(os.stat(os.path.join(
                etc, name)).st_mode), name)
        uwsgi = plugin_tests.read_ini(os.path.join(
            etc, 'korora-api-uwsgi.ini'))['uwsgi']
        self.assertEqual(['korora_nova.wsgi.api:application'],
                         uwsgi['module'])
        self.assertNotIn('env', uwsgi)
        with open(node.path('etc', 'apache2', 'sites-available',
                            'korora-api.conf')) as stream:
            self.assertEqual(
                'ProxyPass "/korora" "unix:%s|uwsgi://uwsgi-uds-korora-api" '
                'retry=0 acquire=1 \n' % node.path(
                    'run', 'uwsgi', 'korora-api.socket'), stream.read())
        self.assertIn(['enable_apache_site', 'korora-api'],
                      node.calls('enable_apache_site'))
        unit = plugin_tests.read_ini(node.path(
            'etc', 'systemd', 'system', 'devstack@korora-api.service'))
        self.assertEqual(['%s --procname-prefix korora-api --ini %s' % (
            node.path('bin', 'uwsgi'),
            os.path.join(etc, 'korora-api-uwsgi.ini'))],
            [command.split(' --venv ')[0]
             for command in unit['Service']['ExecStart']])
        self.assertEqual(['OS_KORORA_CONFIG_FILES=%s'
                          % os.path.join(etc, 'korora-api.conf')],
                         unit['Service']['Environment'])

    def check_answers(self):
        """korora-api under uWSGI, found in the catalog, with real
        tokens: the host the plugin enrolled, trusted; an attestation
        the verifier carries out (it trusts korora-api's key); the
        policy's refusal of a project reader and of no token."""
        reader = v1.Client(self.keystone.session('system-reader'))
        self.assertEqual([(HOST, 'trusted')],
                         [(host['name'], host['trust']['state'])
                          for host in reader.hosts()])
        admin = v1.Client(self.keystone.session('admin'))
        self.assertTrue(admin.attest_host(HOST)['verdict']['trusted'])
        error = self.assertRaises(
            exception.APIRequestFailed,
            v1.Client(self.keystone.session('project-reader')).hosts)
        self.assertEqual((403, 'korora-api: policy does not allow '
                          'korora:hosts:list to be performed (HTTP 403)'),
                         (error.status, str(error)))
        self.assertEqual(401, requests.get(self.apache.url + '/hosts',
                                           timeout=30).status_code)

    def check_horizon_files(self, node):
        local = node.path('opt', 'horizon', 'openstack_dashboard', 'local')
        self.assertEqual([('enabled', '_9010_korora_panel_group.py'),
                          ('enabled', '_9011_korora_host_trust.py'),
                          ('enabled', '_9012_korora_secure_migrations.py'),
                          ('enabled', '_9013_korora_policies.py'),
                          ('enabled', '_9014_korora_audit.py'),
                          ('local_settings.d', '_9010_korora.py')],
                         shipped_horizon_files())
        for folder, name in shipped_horizon_files():
            with open(os.path.join(DASHBOARD, folder, name)) as shipped, \
                    open(os.path.join(local, folder, name)) as copied:
                self.assertEqual(shipped.read(), copied.read(), name)
        # Horizon pins the verifier's key, as the services do.
        settings = {}
        with open(os.path.join(local, 'local_settings.d',
                               '_9011_korora_verifier_keys.py')) as stream:
            exec(stream.read(), settings)
        self.assertEqual(
            [node.path('etc', 'korora', 'verifier-public-key.pem')],
            settings['KORORA_VERIFIER_PUBLIC_KEYS'])
