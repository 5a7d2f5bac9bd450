"""Nova's API behind a real Keystone, with Kororā's checks behind it.

Keystone 30 on SQLite (a child process, one per class), Nova 34's own
paste pipeline with keystonemiddleware on a loopback port, Nova's
conductor, scheduler with TrustedVTPMFilter and three computes with
Kororā's hooked driver, each with its swtpm and vTPM manager, the
verifier, all on RabbitMQ, and korora-api behind the same Keystone
(tests/fixtures/nova_keystone.py). Every call below carries a token
Keystone issued to one of the secure-RBAC personas, through
python-novaclient, the `openstack` console script or korora's client,
as Horizon and an operator make them.
"""

# Nova's functional package monkey-patches on import: nova_cloud first.
from korora_nova.demo import nova_cloud  # noqa: F401

import json
import os
import subprocess

from novaclient import client as nova_client
from novaclient import exceptions as nova_exceptions
import requests

from korora_nova.migration import states
from tests.fixtures import daemons
from tests.fixtures import keystone as keystone_fixture
from tests.fixtures import nova_keystone

SOURCE = 'compute-1'
DEST = 'compute-2'
UNTRUSTED = 'compute-3'
CLI_TIMEOUT = 120


class TestNovaBehindKeystone(nova_keystone.KororaCloudBehindKeystone):

    def setUp(self):
        super().setUp()
        self.server = self.boot_server(self.vtpm_flavor, host=SOURCE)

    def nova(self, persona='admin', microversion='2.1', project=None):
        """python-novaclient as Horizon makes it: a Keystone session of
        the persona, the endpoint from the catalog."""
        session = self.keystone.session(
            persona, 'project', project or keystone_fixture.PROJECT)
        return nova_client.Client(microversion, session=session)

    def openstack(self, persona, *argv):
        """The `openstack` console script as persona, its JSON output."""
        args = self.keystone.auth_args(persona, 'project')
        environment = {name: value for name, value in os.environ.items()
                       if not name.startswith('OS_')}
        result = subprocess.run(
            [daemons.console_script('openstack'),
             '--os-auth-url', args['auth_url'],
             '--os-username', args['username'],
             '--os-password', args['password'],
             '--os-user-domain-id', 'default',
             '--os-project-name', args['project_name'],
             '--os-project-domain-id', 'default',
             '--os-region-name', keystone_fixture.REGION,
             '--os-identity-api-version', '3'] + list(argv) + ['-f', 'json'],
            capture_output=True, text=True, timeout=CLI_TIMEOUT,
            env=environment)
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout)

    def test_no_token_no_access(self):
        servers = self.compute_url + '/servers'
        response = requests.get(servers, timeout=10)
        self.assertEqual(401, response.status_code)
        # auth_token tells the client where to get a token.
        self.assertEqual('Keystone uri="%s"' % self.keystone.url,
                         response.headers['WWW-Authenticate'])
        response = requests.get(servers, timeout=10,
                                headers={'X-Auth-Token': 'forged'})
        self.assertEqual(401, response.status_code)
        token = self.keystone.token('project-member')
        response = requests.get(servers, timeout=10,
                                headers={'X-Auth-Token': token})
        self.assertEqual(200, response.status_code)
        # A member who adds the identity headers auth_token would set (and
        # Nova's test stub believes) is still a member: no admin's call.
        forged = {'X-Auth-Token': token, 'X-Roles': 'admin,member,reader',
                  'X-User-Id': 'admin', 'X-Auth-User': 'admin',
                  'X-Is-Admin-Project': 'True'}
        for headers in ({'X-Auth-Token': token}, forged):
            response = requests.get(self.compute_url + '/os-services',
                                    timeout=10, headers=headers)
            self.assertEqual(403, response.status_code)
            self.assertIn("Policy doesn't allow os_compute_api:os-services:"
                          'list to be performed', response.text)

    def test_a_member_sees_only_its_projects_servers(self):
        # self.server is in project demo; the admin boots another in its
        # project "admin".
        other = self.nova(microversion='2.37', project='admin').servers.create(
            'admins-own', self.glance.image1['id'], self.vtpm_flavor,
            nics='none')
        self.wait_for_server(other.id)
        listed = self.openstack('project-member', 'server', 'list')
        self.assertEqual([self.server['id']], [s['ID'] for s in listed])
        member = self.nova('project-member')
        self.assertEqual([self.server['id']],
                         [s.id for s in member.servers.list()])
        self.assertRaises(nova_exceptions.NotFound, member.servers.get,
                          other.id)
        # The admin sees both, with their hosts.
        every = self.nova().servers.list(search_opts={'all_tenants': True})
        self.assertEqual({self.server['id'], other.id},
                         {s.id for s in every})
        self.assertEqual(SOURCE, getattr(
            self.nova().servers.get(self.server['id']),
            'OS-EXT-SRV-ATTR:host'))

    def test_the_admin_sees_compute_services_and_hypervisors(self):
        admin = self.nova(microversion='2.53')
        computes = admin.services.list(binary='nova-compute')
        self.assertEqual(
            [(host, 'enabled', 'up') for host in self.COMPUTE_HOSTS],
            sorted((s.host, s.status, s.state) for s in computes))
        self.assertEqual(
            list(self.COMPUTE_HOSTS),
            sorted(h.hypervisor_hostname for h in admin.hypervisors.list()))
        member = self.nova('project-member', microversion='2.53')
        self.assertRaises(nova_exceptions.Forbidden, member.services.list)
        self.assertRaises(nova_exceptions.Forbidden,
                          member.hypervisors.list)

    def test_live_migration_to_a_trusted_host_commits(self):
        # Horizon's call: novaclient at 2.1 with the host chosen.
        admin = self.nova()
        marker = self.latest_migration_id(self.server)
        admin.servers.live_migrate(self.server['id'], DEST, False, False)
        migration = self.wait_for_migration(self.server, newer_than=marker)
        self.assertEqual('completed', migration['status'])
        server = admin.servers.get(self.server['id'])
        self.assertEqual(('ACTIVE', DEST), (
            server.status, getattr(server, 'OS-EXT-SRV-ATTR:host')))
        # Kororā's record, as an operator reads it through korora-api.
        korora = self.korora_client()
        found = self.wait_for_korora(korora, states.COMMITTED)
        self.assertEqual((SOURCE, DEST),
                         (found['source_host'], found['dest_host']))
        shown = korora.migration(found['uuid'])
        self.assertEqual(list(states.FORWARD),
                         [entry['state'] for entry in shown['timeline']])
        self.assertTrue(shown['manifest']['valid'])
        self.assertEqual((SOURCE, DEST), (shown['manifest']['source_host'],
                                          shown['manifest']['dest_host']))
        self.assertTrue(all(entry['intact']
                            for entry in shown['audit_entries']))
        self.assertEqual([DEST], self.hosts_with_state(self.server))

    def test_live_migration_to_an_untrusted_host_is_refused(self):
        self.change_host(UNTRUSTED)
        self.wait_for_trust(UNTRUSTED, False)
        # korora-api tells the operator before anyone tries.
        trust = {entry['host']: entry for entry in
                 self.korora_client().instance_trust(self.server['id'])}
        self.assertEqual((True, None), (trust[DEST]['allowed'],
                                        trust[DEST]['reason']))
        self.assertFalse(trust[UNTRUSTED]['allowed'])
        self.assertIn('untrusted: PCR sha256:10 = ',
                      trust[UNTRUSTED]['reason'])
        admin = self.nova()
        error = self.assertRaises(
            nova_exceptions.BadRequest, admin.servers.live_migrate,
            self.server['id'], UNTRUSTED, False, False)
        self.assertIn('Korora: the destination host is not trusted',
                      str(error))
        server = self.wait_for_server(self.server, 'ACTIVE')
        self.assertEqual(SOURCE, server['OS-EXT-SRV-ATTR:host'])
        # The reason stays in the server's instance action, for the admin.
        events = self.migration_events(self.nova(microversion='2.84'))
        self.assertIn('Korora: the destination host is not trusted',
                      ' '.join(str(event.get('details'))
                               for event in events))
        self.assertEqual([SOURCE], self.hosts_with_state(self.server))

    # -- helpers -----------------------------------------------------------

    def wait_for_korora(self, korora, state):
        """The server's newest Kororā migration once in state, read
        through korora-api."""
        def check():
            found = korora.migrations(instance_uuid=self.server['id'])
            return found[0] if found and found[0]['state'] == state else None
        return self._poll(check, None, 'a Korora migration in %s' % state)

    def migration_events(self, admin):
        """The events of the server's newest live-migration action."""
        actions = [a for a in admin.instance_action.list(self.server['id'])
                   if a.action == 'live-migration']
        self.assertTrue(actions, 'no live-migration action')
        return admin.instance_action.get(self.server['id'],
                                         actions[0].request_id).events
