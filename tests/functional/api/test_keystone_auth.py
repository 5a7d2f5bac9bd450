"""korora-api behind a real Keystone: tokens and the policy defaults.

The bed (api_server.KeystoneCloudFixture) is shared by the class:
Keystone 30 on SQLite and the korora-api console script, each a child
process, keystonemiddleware's auth_token between them, the verifier in
this process on a real RabbitMQ node and two vTPM managers on swtpm.
Every request carries a token Keystone issued to one of the secure-RBAC
personas (tests/fixtures/keystone.py), scoped as that persona logs in.
The gabbi tests (gabbits/) check the same rules with auth_token replaced
by headers; these check that real tokens reach them as the defaults
expect.
"""

import json

import fixtures
from oslotest import base
import requests

from korora_nova.attestation import policy as policy_module
from korora_nova.db import api as db
from korora_nova.verifier import admin
from tests.fixtures import api as api_fixtures
from tests.fixtures import api_server

HOSTS = api_server.HOSTS
POLICY = 'compute-2026-12'
TIMEOUT = 60
# Who asks: (Keystone user, scope).
PERSONAS = {
    'admin': ('admin', 'system'),
    'project-admin': ('admin', 'project'),
    'system-reader': ('system-reader', 'system'),
    'project-member': ('project-member', 'project'),
    'project-reader': ('project-reader', 'project'),
}
READERS = ('admin', 'project-admin', 'system-reader')


class TestKeystoneAuth(base.BaseTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bed = fixtures.Fixture()
        cls.bed.setUp()
        try:
            cls._make_cloud()
        except BaseException:
            cls.bed.cleanUp()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.bed.cleanUp()
        super().tearDownClass()

    @classmethod
    def _make_cloud(cls):
        cls.cloud = cls.bed.useFixture(api_server.KeystoneCloudFixture())
        cls.keystone = cls.cloud.keystone
        cls.url = cls.cloud.api.url
        admin.import_policy(*cls.signed(1), active=True)
        admin.enroll(cls.cloud.verifier.manager_api, HOSTS[0], POLICY,
                     False)
        cls.records = api_fixtures.make_migrations(HOSTS)
        cls.tokens = {persona: cls.keystone.token(user, scope)
                      for persona, (user, scope) in PERSONAS.items()}

    @classmethod
    def signed(cls, version):
        """Policy POLICY at version, allowing the hosts' PCR values,
        and the trusted operator's signature."""
        reference = policy_module.from_values(POLICY, version,
                                              cls.cloud.pcr_values)
        return reference, policy_module.sign(reference,
                                             cls.cloud.operator.key)

    def request(self, method, path, token=None, body=None):
        # The latest microversion: 1.0's resources and 1.1's writes.
        headers = {'OpenStack-API-Version': 'korora 1.1'}
        if token is not None:
            headers['X-Auth-Token'] = token
        return requests.request(method, self.url + path, headers=headers,
                                json=body, timeout=TIMEOUT)

    def detail(self, response):
        return response.json()['errors'][0]['detail']

    # Tokens.

    def assertUnauthorized(self, response):
        self.assertEqual(401, response.status_code, response.text)
        # keystonemiddleware says where to get a token.
        self.assertEqual('Keystone uri="%s"' % self.keystone.url,
                         response.headers['WWW-Authenticate'])

    def test_the_version_document_needs_no_token(self):
        response = self.request('GET', '/')
        self.assertEqual(200, response.status_code)

    def test_no_token(self):
        self.assertUnauthorized(self.request('GET', '/hosts'))
        self.assertUnauthorized(self.request('POST', '/hosts/%s/attest'
                                             % HOSTS[0]))

    def test_garbage_token(self):
        self.assertUnauthorized(self.request('GET', '/hosts',
                                             token='not-a-token'))
        # A token's shape with nothing Keystone issued behind it.
        self.assertUnauthorized(self.request(
            'GET', '/hosts', token='gAAAAA' + 'A' * 180))

    def test_revoked_token(self):
        client = self.keystone.admin_client()
        token = self.keystone.token('admin')
        client.tokens.revoke_token(token)
        self.assertUnauthorized(self.request('GET', '/hosts', token=token))
        self.assertUnauthorized(self.request(
            'PUT', '/hosts/%s/policy' % HOSTS[0], token=token,
            body={'policy': POLICY}))

    def test_a_write_names_the_keystone_user_and_project(self):
        client = self.keystone.admin_client()
        user = client.users.find(name='admin')
        project = client.projects.find(name='demo')
        response = self.request('PUT', '/hosts/%s/policy' % HOSTS[0],
                                token=self.tokens['project-admin'],
                                body={'policy': POLICY})
        self.assertEqual(200, response.status_code, response.text)
        entry = db.audit_head()
        self.assertEqual('policy-assign', entry.step)
        self.assertEqual(
            {'user_id': user.id, 'project_id': project.id,
             'request_id': response.headers['x-openstack-request-id']},
            json.loads(entry.details)['requested_by'])

    def test_a_system_scoped_write_names_the_system(self):
        user = self.keystone.admin_client().users.find(name='admin')
        response = self.request('PUT', '/hosts/%s/policy' % HOSTS[0],
                                token=self.tokens['admin'],
                                body={'policy': POLICY})
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual(
            {'user_id': user.id, 'system_scope': 'all',
             'request_id': response.headers['x-openstack-request-id']},
            json.loads(db.audit_head().details)['requested_by'])

    def test_revoked_after_use(self):
        """auth_token keeps a token it validated for token_cache_time
        (300 s): a korora-api with the cache off refuses a revoked
        token at once, one with the default only later (admin/api.rst,
        "Tokens")."""
        uncached = self.useFixture(api_server.KororaAPIServerFixture(
            self.keystone, authtoken={'token_cache_time': '-1'},
            catalog=False))
        token = self.keystone.token('system-reader')
        for url in (self.url, uncached.url):
            response = requests.get(url + '/hosts', timeout=TIMEOUT,
                                    headers={'X-Auth-Token': token})
            self.assertEqual(200, response.status_code, response.text)
        self.keystone.admin_client().tokens.revoke_token(token)
        response = requests.get(uncached.url + '/hosts', timeout=TIMEOUT,
                                headers={'X-Auth-Token': token})
        self.assertUnauthorized(response)
        cached = requests.get(self.url + '/hosts', timeout=TIMEOUT,
                              headers={'X-Auth-Token': token})
        self.assertEqual(200, cached.status_code, cached.text)

    # The policy defaults.

    def rules(self):
        """(rule, method, path, body, {persona: status}) of each rule's
        default. Writes are asked by the refused personas first
        (nothing changes), then by the admins: the second admin's
        request finds the first one's result (exists already: 409;
        gone: 404)."""
        records = self.records
        reference, signature = self.signed(2)
        import_body = {'policy': reference.to_json(),
                       'signature': signature, 'active': False}
        reads = [
            ('korora:hosts:list', 'GET', '/hosts', None),
            ('korora:hosts:show', 'GET', '/hosts/%s' % HOSTS[0], None),
            ('korora:policies:list', 'GET', '/policies', None),
            ('korora:policies:show', 'GET', '/policies/%s' % POLICY, None),
            ('korora:policies:show', 'GET',
             '/policies/%s/versions/1' % POLICY, None),
            ('korora:migrations:list', 'GET',
             '/migrations?instance_uuid=%s' % records['instance'], None),
            ('korora:migrations:show', 'GET',
             '/migrations/%s' % records['committed'], None),
            ('korora:audit:verify', 'GET', '/audit/verify', None),
            ('korora:audit:head', 'GET', '/audit/head', None),
            ('korora:audit:anchors', 'GET', '/audit/anchors', None),
            ('korora:instances:trust', 'GET',
             '/instances/%s/trust' % records['instance'], None),
        ]
        table = [(rule, method, path, body,
                  {persona: 200 if persona in READERS else 403
                   for persona in PERSONAS})
                 for rule, method, path, body in reads]

        def write(rule, method, path, body, admin, project_admin):
            statuses = dict.fromkeys(PERSONAS, 403)
            statuses.update({'admin': admin, 'project-admin': project_admin})
            table.append((rule, method, path, body, statuses))

        write('korora:hosts:enroll', 'POST', '/hosts',
              {'host': HOSTS[1], 'policy': POLICY}, 201, 409)
        write('korora:hosts:attest', 'POST', '/hosts/%s/attest' % HOSTS[1],
              None, 200, 200)
        write('korora:hosts:set_policy', 'PUT', '/hosts/%s/policy'
              % HOSTS[1], {'policy': POLICY}, 200, 200)
        write('korora:hosts:delete', 'DELETE', '/hosts/%s' % HOSTS[1],
              None, 204, 404)
        write('korora:policies:import', 'POST', '/policies', import_body,
              201, 409)
        write('korora:policies:activate', 'POST',
              '/policies/%s/versions/2/activate' % POLICY, None, 200, 200)
        write('korora:policies:deactivate', 'POST',
              '/policies/%s/versions/2/deactivate' % POLICY, None, 200, 200)
        write('korora:hosts:quote', 'POST', '/hosts/%s/quote' % HOSTS[0],
              None, 200, 200)
        # Each admin's anchor signs the entry naming that admin.
        write('korora:audit:anchor', 'POST', '/audit/anchors',
              {'host': HOSTS[0]}, 201, 201)
        return table

    def test_every_rule_for_every_persona(self):
        expected, observed, refusals = [], [], set()
        for rule, method, path, body, statuses in self.rules():
            # Refused personas first: the admins' writes come last.
            for persona in sorted(PERSONAS, key=lambda p: (
                    statuses[p] != 403, p != 'admin')):
                response = self.request(method, path,
                                        token=self.tokens[persona],
                                        body=body)
                expected.append((rule, method, path, persona,
                                 statuses[persona]))
                observed.append((rule, method, path, persona,
                                 response.status_code))
                if response.status_code == 403:
                    refusals.add(self.detail(response))
        self.assertEqual(expected, observed)
        self.assertIn('policy does not allow korora:hosts:enroll to be '
                      'performed', refusals)

    def test_a_refused_write_changes_nothing(self):
        before = db.audit_head().seq
        for persona in ('system-reader', 'project-member', 'project-reader'):
            response = self.request(
                'POST', '/hosts', token=self.tokens[persona],
                body={'host': 'compute-3', 'policy': POLICY})
            self.assertEqual(403, response.status_code, response.text)
        self.assertEqual(before, db.audit_head().seq)
        self.assertNotIn('compute-3',
                         [host.name for host in db.host_list()])
