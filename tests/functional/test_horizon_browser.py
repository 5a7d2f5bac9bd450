"""korora-nova's Horizon plugin in a real browser.

Separate processes, as an operator runs them: Keystone 30 on SQLite
(KeystoneFixture), korora-api behind keystonemiddleware in Keystone's
catalog (KororaAPIServerFixture), Horizon 27 with the plugin
(HorizonFixture: ``django runserver``), and headless Chromium driven by
Selenium (BrowserFixture: Debian's chromium and chromium-driver).
Screenshots of every page go to ``$KORORA_TEST_ARTEFACTS`` (default
``.artefacts/`` in the tree).

``TestHorizonPanels``: the bed of api_server.KeystoneCloudFixture (the
verifier in the test process on a real RabbitMQ node, two vTPM managers
on their own swtpm): compute-1 trusted, compute-2 untrusted because a
PCR changed after it was enrolled. Migration records
are the verifier's own (migration.records), as tests/fixtures/api.py
makes them.

``TestHorizonWithNova``: Kororā's cloud of Nova 34's services with Nova's
API behind the same Keystone (tests/fixtures/nova_keystone.py): Live
Migrate on a vTPM instance, a migration through Horizon, and a refused
one's reason on the instance page.

Each class shares one Keystone, Horizon and browser across its tests.
"""

# Nova's functional package monkey-patches on import: nova_cloud first.
from tests.fixtures import nova_keystone  # noqa: I100

import json
import os
import subprocess
import sys

import fixtures
from novaclient import exceptions as nova_exceptions
from oslo_utils import uuidutils
import testtools
from testtools import content

from korora_nova.attestation import policy as policy_module
from korora_nova.client import v1
from korora_nova import conf
from korora_nova import exception
from korora_nova.migration import records
from korora_nova.migration import states
from tests.fixtures import api_server
from tests.fixtures import daemons
from tests.fixtures import forged_answers
from tests.fixtures import horizon
from tests.fixtures import keystone

CONF = conf.CONF
HOSTS = api_server.HOSTS
POLICY = 'compute-2026-12'
# A second policy of the same values, for Set policy.
OTHER_POLICY = 'compute-2026-12-lab'
FORWARD = (states.PEERS_ATTESTED, states.KEY_CERTIFIED, states.TRANSFERRING,
           states.MEASURED, states.VERIFIED, states.COMMITTED)


class BrowserTest:
    """Horizon and a browser for a test class (class attributes horizon,
    browser), started by _start_horizon, stopped with the class."""

    @classmethod
    def _start_horizon(cls, keystone_fixture):
        cls._horizon_fixtures = fixtures.Fixture()
        cls._horizon_fixtures.setUp()
        try:
            cls.horizon = cls._horizon_fixtures.useFixture(
                horizon.HorizonFixture(keystone_fixture))
            cls.browser = cls._horizon_fixtures.useFixture(
                horizon.BrowserFixture(cls.horizon.url))
        except BaseException:
            cls._horizon_fixtures.cleanUp()
            raise

    @classmethod
    def _stop_horizon(cls):
        cls._horizon_fixtures.cleanUp()

    def setUp(self):
        super().setUp()
        # What Horizon logged, when a test fails.
        self.addOnException(lambda exc_info: self.addDetail(
            'horizon-log', content.text_content(
                self.horizon.daemon.log()[-20000:])))

    def open(self, path, name):
        path = self.browser.open(path, name)
        self.addDetail('screenshot-' + name, content.text_content(path))


@testtools.skipIf(horizon.browser_missing(), horizon.browser_missing())
class TestHorizonPanels(BrowserTest, testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._class_fixtures = fixtures.Fixture()
        cls._class_fixtures.setUp()
        try:
            cls._start()
            cls._start_horizon(cls.keystone)
            cls.browser.login('admin', keystone.ADMIN_PASSWORD)
        except BaseException:
            cls._class_fixtures.cleanUp()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._stop_horizon()
        cls._class_fixtures.cleanUp()
        super().tearDownClass()

    @classmethod
    def _start(cls):
        cls.bed = bed = cls._class_fixtures.useFixture(
            api_server.KeystoneCloudFixture())
        cls.keystone = bed.keystone
        cls.client = client = v1.Client(cls.keystone.session('admin'))
        for name in (POLICY, OTHER_POLICY):
            reference = policy_module.from_values(name, 1, bed.pcr_values)
            client.import_policy(reference.to_json(),
                                 bed.operator.sign(reference))
        for host in HOSTS:
            client.enroll_host(host, policy=POLICY)
            client.attest_host(host)
        # A change on compute-2 after its enrollment: untrusted.
        bed.managers[HOSTS[1]].extend_pcr(10, b'a module loaded later')
        client.attest_host(HOSTS[1])
        cls._migrations()

    @classmethod
    def _migrations(cls):
        """A committed migration, one the verifier aborted with its
        reason, and one whose manifest does not hold."""
        cls.instance = uuidutils.generate_uuid()
        committed = records.create(None, cls.instance, HOSTS[0], HOSTS[1])
        for state in FORWARD:
            records.transition(committed.uuid, HOSTS[0], state)
        cls.committed = committed.uuid
        aborted = records.create(None, cls.instance, HOSTS[1], HOSTS[0])
        records.transition(aborted.uuid, HOSTS[1], states.ABORTED,
                           reason='the destination compute-1 is untrusted')
        cls.aborted = aborted.uuid
        forged = records.create(None, uuidutils.generate_uuid(), HOSTS[0],
                                HOSTS[1])
        for state in FORWARD[:3]:
            records.transition(forged.uuid, HOSTS[0], state)
        text = json.dumps({'manifest': {'counter': 1}, 'signature': 'ab'})
        records.transition(forged.uuid, HOSTS[0], states.MEASURED,
                           manifest=text, source_counter=1)
        cls.forged = forged.uuid

    def attest(self, host):
        """Press Attest now on host's row; the messages shown."""
        return self.browser.press(
            'button[value="korora_hosts__attest__%s"]' % host,
            'attest-%s' % host)

    def test_host_trust_shows_the_trusted_and_the_untrusted_host(self):
        self.open('/admin/korora_host_trust/', 'host-trust')
        self.assertIn('Host trust', self.browser.driver.title)
        trusted = self.browser.row(HOSTS[0])
        self.assertIn('Trusted', trusted)
        self.assertIn(POLICY, trusted)
        untrusted = self.browser.row(HOSTS[1])
        self.assertIn('Untrusted', untrusted)
        self.assertIn('not allowed by policy %s v1' % POLICY, untrusted)
        self.assertIn('PCR sha256:10', untrusted)

    def test_attest_now_shows_the_verdict(self):
        self.open('/admin/korora_host_trust/', 'host-trust')
        self.assertIn('Success: Attested now: %s: trusted under policy '
                      '%s v1' % (HOSTS[0], POLICY), self.attest(HOSTS[0]))
        shown = self.attest(HOSTS[1])
        self.assertIn('Warning: Attested now: untrusted: %s: PCR sha256:10'
                      % HOSTS[1], shown)
        self.assertIn('not allowed by policy %s v1' % POLICY, shown)

    def test_attest_now_shows_the_api_s_reason(self):
        self.open('/admin/korora_host_trust/', 'host-trust-before-removal')
        # compute-2 removed behind the page's back (enrolled again after).
        self.client.delete_host(HOSTS[1])
        self.addCleanup(self.client.attest_host, HOSTS[1])
        self.addCleanup(self.client.enroll_host, HOSTS[1], policy=POLICY)
        shown = self.attest(HOSTS[1])
        self.assertIn('Error: Attesting %s failed: korora-api: host %s is '
                      'not enrolled (HTTP 404)' % (HOSTS[1], HOSTS[1]), shown)
        self.assertEqual(1, shown.count('HTTP'))

    def test_secure_migrations_list_and_detail(self):
        self.open('/admin/korora_secure_migrations/', 'secure-migrations')
        committed = self.browser.row(self.committed)
        self.assertIn('%s %s %s COMMITTED' % (self.instance, HOSTS[0],
                                              HOSTS[1]), committed)
        aborted = self.browser.row(self.aborted)
        self.assertIn('ABORTED', aborted)
        self.assertIn('the destination compute-1 is untrusted', aborted)
        self.browser.find('tr[data-object-id="%s"] a'
                          % self.committed).click()
        self.browser.wait_for(lambda driver: self.browser.find_all(
            '.korora-timeline'))
        self.browser.screenshot('secure-migration-detail')
        timeline = self.browser.text('.korora-timeline')
        self.assertEqual(
            ['REQUESTED'] + [state for state in FORWARD],
            [line.split()[0] for line in timeline.splitlines()[1:]])
        self.assertIn('Every entry is intact',
                      self.browser.text('.korora-audit'))
        self.assertIn('No manifest', self.browser.text('.korora-manifest'))

    def test_a_manifest_that_does_not_hold_is_shown(self):
        self.open('/admin/korora_secure_migrations/%s/' % self.forged,
                  'secure-migration-forged')
        self.assertIn('MEASURED', self.browser.text('.korora-state'))
        self.assertIn('The manifest does not hold: ',
                      self.browser.text('.korora-manifest'))

    def test_an_unknown_migration_goes_back_to_the_list(self):
        missing = uuidutils.generate_uuid()
        self.open('/admin/korora_secure_migrations/%s/' % missing,
                  'secure-migration-missing')
        self.assertTrue(self.browser.driver.current_url.endswith(
            '/admin/korora_secure_migrations/'))
        self.assertIn('Error: korora-api: no migration %s (HTTP 404)'
                      % missing, self.browser.messages())

    # What korora-manage does for hosts, policies and the audit log.

    def restore_host(self, host, policy=POLICY):
        """host enrolled again under policy and attested, if a test took
        it away or changed it."""
        try:
            self.client.host(host)
        except exception.APIRequestFailed:
            self.client.enroll_host(host, policy=policy)
        self.client.set_host_policy(host, policy)
        self.client.attest_host(host)

    def test_host_detail_shows_the_verdict_its_reasons_and_the_tpm(self):
        self.open('/admin/korora_host_trust/', 'host-trust')
        self.browser.find('tr[data-object-id="%s"] a' % HOSTS[1]).click()
        self.browser.wait_for(lambda driver: self.browser.find_all(
            '.korora-host'))
        self.browser.screenshot('host-detail')
        host = self.client.host(HOSTS[1])
        self.assertEqual('Untrusted', self.browser.text('.korora-verdict'))
        self.assertEqual(POLICY, self.browser.text('.korora-policy'))
        self.assertIn('PCR sha256:10 = ', self.browser.text(
            '.korora-reasons'))
        self.assertIn('not allowed by policy %s v1' % POLICY,
                      self.browser.text('.korora-reasons'))
        tpm = self.browser.text('.korora-tpm')
        self.assertIn(host['ak_name'], tpm)
        self.assertIn(host['ek_type'], tpm)
        verdicts = self.browser.text('.korora-verdicts').splitlines()[1:]
        self.assertEqual(len(host['verdicts']), len(verdicts))
        self.assertIn(' no %s ' % POLICY, verdicts[0])

    def test_enroll_set_policy_and_remove_a_host(self):
        host = HOSTS[0]
        self.addCleanup(self.restore_host, host)
        self.open('/admin/korora_host_trust/', 'host-trust')
        self.assertTrue(self.browser.find_all(
            'a#korora_hosts__action_enroll'))

        # Remove host, confirmed in Horizon's dialog: gone from the list
        # and from korora-api.
        shown = self.browser.row_action('korora_hosts', 'remove', host,
                                        'host-removed')
        self.assertIn('Success: Removed Host: %s' % host, shown)
        self.assertEqual([], self.browser.find_all(
            'tr[data-object-id="%s"]' % host))
        self.assertNotIn(host, [item['name'] for item in self.client.hosts()])

        # Enroll host: its TPM read again, judged under the policy chosen.
        self.open('/admin/korora_host_trust/enroll/', 'host-enroll')
        self.assertIn('Whoever controls the host now could enroll a '
                      'software TPM', self.browser.text(
                          '.korora-tofu-warning'))
        self.browser.find('#id_host').send_keys(host)
        self.browser.choose('id_policy', POLICY)
        shown = self.browser.submit('host-enrolled')
        self.assertIn('Success: Enrolled %s: ' % host, shown)
        row = self.browser.row(host)
        self.assertIn(POLICY, row)
        self.assertEqual(self.client.host(host)['policy'], POLICY)
        self.assertEqual('trusted',
                         self.client.attest_host(host)['host']['trust'][
                             'state'])
        self.open('/admin/korora_host_trust/', 'host-trust-enrolled')
        self.assertIn('Trusted', self.browser.row(host))

        # Set policy: the other policy, listed in the form from the API.
        self.open('/admin/korora_host_trust/%s/set_policy/' % host,
                  'host-set-policy')
        self.assertEqual({POLICY, OTHER_POLICY}, {
            option.get_attribute('value') for option in
            self.browser.find_all('select#id_policy option')})
        self.browser.choose('id_policy', OTHER_POLICY)
        shown = self.browser.submit('host-policy-set')
        self.assertIn('Success: %s now follows policy %s' % (
            host, OTHER_POLICY), shown)
        self.assertIn(OTHER_POLICY, self.browser.row(host))
        self.assertEqual(OTHER_POLICY, self.client.host(host)['policy'])

    def test_set_policy_of_a_host_removed_meanwhile_shows_the_reason(self):
        host = HOSTS[1]
        self.open('/admin/korora_host_trust/%s/set_policy/' % host,
                  'host-set-policy-removed')
        # Removed behind the form's back (enrolled again after).
        self.client.delete_host(host)
        self.addCleanup(self.restore_host, host)
        self.browser.choose('id_policy', OTHER_POLICY)
        self.browser.find('.modal-footer .btn-primary').click()
        self.browser.wait_for(lambda driver: self.browser.messages())
        self.browser.screenshot('host-set-policy-refused')
        shown = self.browser.messages()
        self.assertIn('Error: Setting the policy of %s failed: korora-api: '
                      'host %s is not enrolled (HTTP 404)' % (host, host),
                      shown)
        self.assertEqual(1, shown.count('HTTP'))
        self.assertNotIn(host, [item['name'] for item in self.client.hosts()])

    def sign_offline(self, document):
        """The policy file and its signature as the operator makes them on
        their machine: korora-manage policy sign."""
        folder = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(folder, '%s.json' % document['name'])
        with open(path, 'w') as stream:
            json.dump(document, stream)
        result = subprocess.run(
            [daemons.console_script('korora-manage'), 'policy', 'sign',
             '--signing-key', self.bed.operator.private_path, path],
            capture_output=True, text=True, timeout=120,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        self.assertEqual(0, result.returncode, result.stderr)
        return path, result.stdout.strip()

    def test_import_a_signed_policy_then_deactivate_and_activate_it(self):
        name = 'horizon-import'
        document = policy_module.from_values(
            name, 1, self.bed.pcr_values).to_json()
        path, signature = self.sign_offline(document)
        self.open('/admin/korora_policies/', 'policies')
        self.assertIn('%s 1 Yes Yes' % POLICY, self.browser.row(
            '%s:1' % POLICY))
        self.assertTrue(self.browser.find_all(
            'a#korora_policies__action_import'))

        self.open('/admin/korora_policies/import/', 'policy-import')
        self.assertIn("never holds the operator's private key",
                      self.browser.text('.korora-offline-signing'))
        self.browser.find('#id_policy_file').send_keys(path)
        self.browser.find('#id_signature_text').send_keys(signature)
        shown = self.browser.submit('policy-imported')
        self.assertIn('Success: Imported policy %s:1 (active)' % name, shown)
        key = '%s:1' % name
        self.assertIn('%s 1 Yes Yes' % name, self.browser.row(key))

        shown = self.browser.row_action('korora_policies', 'deactivate', key,
                                        'policy-deactivated')
        self.assertIn('Success: %s is inactive' % key, shown)
        self.assertIn('%s 1 No Yes' % name, self.browser.row(key))
        self.assertFalse(self.client.policy_version(name, 1)['active'])
        shown = self.browser.row_action('korora_policies', 'activate', key,
                                        'policy-activated')
        self.assertIn('Success: %s is active' % key, shown)
        self.assertIn('%s 1 Yes Yes' % name, self.browser.row(key))
        self.assertTrue(self.client.policy_version(name, 1)['active'])

        # Its page: the PCR document.
        self.browser.find('tr[data-object-id="%s"] a' % key).click()
        self.browser.wait_for(lambda driver: self.browser.find_all(
            '.korora-pcrs'))
        self.browser.screenshot('policy-detail')
        self.assertIn('yes: by an operator key the verifier trusts',
                      self.browser.text('.korora-signed'))
        pcrs = self.browser.text('.korora-pcrs')
        for index, digest in self.bed.pcr_values['sha256'].items():
            self.assertIn('sha256 %d %s' % (index, digest.hex()), pcrs)

    def test_a_policy_with_a_bad_signature_is_refused_with_the_reason(self):
        self.open('/admin/korora_policies/', 'policies')
        before = self.browser.text('#korora_policies')
        for name, signature, reason in (
                ('horizon-garbled', 'not-a-jws',
                 'its signature is malformed'),
                ('horizon-stranger', None,
                 'signed by key %s, which [korora] policy_signing_keys '
                 'does not list' % self.bed.stranger.key_id)):
            reference = policy_module.from_values(name, 1,
                                                  self.bed.pcr_values)
            signature = signature or self.bed.stranger.sign(reference)
            self.open('/admin/korora_policies/import/', 'policy-' + name)
            self.browser.find('#id_policy_text').send_keys(
                json.dumps(reference.to_json()))
            self.browser.find('#id_signature_text').send_keys(signature)
            self.browser.find('.modal-footer .btn-primary').click()
            self.browser.wait_for(lambda driver: self.browser.messages())
            self.browser.screenshot('policy-refused-' + name)
            shown = self.browser.messages()
            self.assertIn('Error: Importing the policy failed: korora-api: ',
                          shown)
            self.assertIn(reason, shown)
            self.assertEqual(1, shown.count('HTTP 400'))
            self.assertEqual([], self.client.policies(name=name))
        self.open('/admin/korora_policies/', 'policies-unchanged')
        self.assertEqual(before, self.browser.text('#korora_policies'))

    def test_record_a_policy_from_a_host_to_sign_offline(self):
        # compute-2 is untrusted (a PCR changed after its enrollment):
        # a policy recorded from it, signed and imported, trusts it.
        host, name = HOSTS[1], 'recorded-in-horizon'
        self.addCleanup(self.restore_host, host)
        self.open('/admin/korora_host_trust/%s/record_policy/' % host,
                  'record-policy')
        self.browser.find('#id_name').send_keys(name)
        self.browser.find('.modal-footer .btn-primary').click()
        self.browser.wait_for(lambda driver: self.browser.find_all(
            '.korora-recorded-policy'))
        self.browser.screenshot('recorded-policy')

        document = json.loads(self.browser.text('.korora-recorded-policy'))
        self.assertEqual((name, 1), (document['name'], document['version']))
        self.assertEqual(host, self.browser.text('.korora-recorded-host'))
        self.assertIn('korora-manage policy sign', self.browser.text(
            '.korora-recorded-steps'))
        # Nothing stored: the operator has not signed it yet.
        self.assertEqual([], self.client.policies(name=name))
        _, signature = self.sign_offline(document)
        self.client.import_policy(document, signature)
        self.client.set_host_policy(host, name)
        self.assertEqual('trusted', self.client.attest_host(host)['host'][
            'trust']['state'])

    def test_record_policy_bad_version_and_removed_host(self):
        host = HOSTS[1]
        self.open('/admin/korora_host_trust/%s/record_policy/' % host,
                  'record-policy-bad')
        self.browser.find('#id_name').send_keys('never-recorded')
        version = self.browser.find('#id_version')
        version.clear()
        version.send_keys('0')
        self.browser.driver.execute_script(
            'document.getElementById("id_version").removeAttribute("min")')
        self.browser.find('.modal-footer .btn-primary').click()
        self.browser.wait_for(lambda driver: self.browser.find_all(
            '.has-error'))
        self.assertIn('greater than or equal to 1',
                      self.browser.text('.has-error'))

        self.client.delete_host(host)
        self.addCleanup(self.restore_host, host)
        version = self.browser.find('#id_version')
        version.clear()
        version.send_keys('1')
        self.browser.find('.modal-footer .btn-primary').click()
        self.browser.wait_for(lambda driver: self.browser.messages())
        self.browser.screenshot('record-policy-refused')
        self.assertIn('Error: Quoting %s failed: korora-api: host %s is not '
                      'enrolled (HTTP 404)' % (host, host),
                      self.browser.messages())
        self.assertEqual([], self.client.policies(name='never-recorded'))

    def test_record_policy_refuses_a_forged_quote(self):
        # An attacker on the bus answers in the verifier's place with a
        # compromised host's values: Horizon shows none of them.
        host, name = HOSTS[0], 'forged-in-horizon'
        forged = self.useFixture(forged_answers.ForgingVerifierFixture(
            self.bed, lambda host, nonce, values: None))
        self.open('/admin/korora_host_trust/%s/record_policy/' % host,
                  'record-policy-forged')
        self.browser.find('#id_name').send_keys(name)
        self.browser.find('.modal-footer .btn-primary').click()
        self.browser.wait_for(lambda driver: self.browser.messages())
        self.browser.screenshot('record-policy-forged')
        self.assertIn('Error: Quoting %s failed: the answer carries no '
                      'token signed by the verifier' % host,
                      self.browser.messages())
        self.assertEqual([('quote_host', host)],
                         [ask[:2] for ask in forged.forger.asked])
        self.assertFalse(self.browser.find_all('.korora-recorded-policy'))
        self.assertEqual([], self.client.policies(name=name))

    def test_audit_log_is_intact_with_its_head(self):
        self.open('/admin/korora_audit/', 'audit-log')
        head = self.client.audit_head()
        self.assertIn('intact', self.browser.text('.korora-audit-state'))
        self.assertEqual('%d:%s' % (head['seq'], head['entry_hash']),
                         self.browser.text('.korora-audit-head'))
        self.assertIn('intact', self.browser.text('.korora-audit-summary'))
        anchors = self.client.audit_anchors()
        rows = self.browser.text('.korora-audit-anchors').splitlines()[1:]
        if anchors:
            self.assertEqual(len(anchors), len(rows))
        else:
            self.assertEqual(['No anchor yet.'], rows)
        # The anchor form, for an admin.
        self.assertTrue(self.browser.find_all('a#korora_anchor_now'))

    def test_anchor_now_signs_the_head_in_a_host_s_tpm(self):
        host = HOSTS[0]
        before = self.client.audit_anchors()
        self.open('/admin/korora_audit/anchor/', 'audit-anchor')
        self.browser.choose('id_host', host)
        shown = self.browser.submit('audit-anchored')

        added = [anchor for anchor in self.client.audit_anchors()
                 if anchor not in before]
        self.assertEqual(1, len(added), added)
        self.assertEqual(host, added[0]['host'])
        self.assertIn('Success: Anchored the audit log at seq %d in %s\'s '
                      'TPM' % (added[0]['seq'], host), shown)
        self.assertTrue(self.client.audit_verify()['audit']['ok'])
        self.open('/admin/korora_audit/', 'audit-log-anchored')
        self.assertIn('intact', self.browser.text('.korora-audit-state'))
        rows = self.browser.text('.korora-audit-anchors')
        self.assertIn(str(added[0]['seq']), rows)
        self.assertIn(host, rows)

    def test_anchor_now_with_a_host_removed_meanwhile_is_refused(self):
        host = HOSTS[1]
        before = self.client.audit_anchors()
        self.open('/admin/korora_audit/anchor/', 'audit-anchor-removed')
        # Removed behind the form's back (enrolled again after): the
        # form, read again on submit, no longer offers it.
        self.client.delete_host(host)
        self.addCleanup(self.restore_host, host)
        self.browser.choose('id_host', host)
        self.browser.find('.modal-footer .btn-primary').click()
        self.browser.wait_for(lambda driver: self.browser.find_all(
            '.has-error'))
        self.browser.screenshot('audit-anchor-refused')
        self.assertIn('Select a valid choice. %s is not one of the '
                      'available choices.' % host,
                      self.browser.text('.has-error'))
        self.assertEqual(before, self.client.audit_anchors())

    def test_a_project_reader_sees_no_korora_panel(self):
        """korora-api lets a project reader read nothing (its policy:
        admins and system readers); Horizon shows its Admin dashboard
        only to admins, and a system reader with no project cannot log in
        to Horizon at all."""
        # A browser of its own: the class's stays the admin's.
        reader = self.useFixture(horizon.BrowserFixture(self.horizon.url))
        reader.login('project-reader', keystone.PASSWORD)
        path = reader.open('/project/', 'reader-project')
        self.addDetail('screenshot-reader-project', content.text_content(path))
        self.assertIn('project-reader', reader.text('.navbar'))
        self.assertEqual([], reader.find_all('a[href^="/admin/korora_"]'))
        reader.driver.get(self.horizon.url + '/admin/korora_policies/')
        reader.screenshot('reader-admin-refused')
        self.assertEqual([], reader.find_all('#korora_policies'))
        self.assertEqual([], reader.find_all(
            'a#korora_policies__action_import'))

        # korora-api's system reader has no project: Horizon lets it not in.
        system_reader = self.useFixture(horizon.BrowserFixture(
            self.horizon.url))
        system_reader.driver.get(self.horizon.url + '/auth/login/')
        system_reader.find('#id_username').send_keys('system-reader')
        system_reader.find('#id_password').send_keys(keystone.PASSWORD)
        system_reader.find('#loginBtn').click()
        system_reader.wait_for(lambda driver: system_reader.find_all(
            '.alert-danger, .error'))
        system_reader.screenshot('system-reader-login')
        self.assertIn('You are not authorized for any projects or domains',
                      system_reader.text('.alert-danger, .error'))


@testtools.skipIf(horizon.browser_missing(), horizon.browser_missing())
class TestHorizonWithNova(BrowserTest,
                          nova_keystone.KororaCloudBehindKeystone):
    """Kororā's cloud (three trusted computes with the hooked driver,
    TrustedVTPMFilter) on RabbitMQ, Nova's API behind Keystone, korora-api
    in its catalog. One test: the cloud is built for each test, Keystone,
    Horizon and the browser once for the class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls._start_horizon(cls.keystone)
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._stop_horizon()
        super().tearDownClass()

    def live_migrate_form(self, server, name):
        self.open('/admin/instances/%s/live_migrate' % server['id'], name)
        options = {option.get_attribute('value'): option for option in
                   self.browser.find_all('select#id_host option')}
        anchors = {anchor.get_attribute('data-select-value'): anchor
                   for anchor in self.browser.find_all(
                       '.themable-select li a')}
        return options, anchors

    def test_live_migrate_marks_untrusted_hosts_and_the_instance_page(self):
        self.change_host('compute-3')
        self.wait_for_trust('compute-3', False)
        server = self.boot_server(self.vtpm_flavor, host='compute-1')

        # Without korora-api in the catalog, Horizon is Horizon's own.
        # (korora-api's endpoints out of the catalog, its service kept.)
        admin = self.keystone.admin_client()
        korora = admin.services.find(type='korora')
        for endpoint in admin.endpoints.list(service=korora):
            admin.endpoints.delete(endpoint)
        self.browser.login('admin', keystone.ADMIN_PASSWORD)
        options, anchors = self.live_migrate_form(server, 'without-korora')
        self.assertEqual('compute-3', options['compute-3'].get_attribute(
            'textContent').strip())
        self.assertIsNone(options['compute-3'].get_attribute('disabled'))
        self.open('/admin/instances/%s/detail' % server['id'],
                  'instance-without-korora')
        self.assertEqual([], self.browser.find_all(
            'a[data-target="#instance_details__korora"]'))
        self.assertEqual([], self.browser.find_all(
            'a[href="/admin/korora_host_trust/"]'))

        # In the catalog again, logged in again: the new token's catalog
        # names korora-api.
        for interface in ('public', 'internal', 'admin'):
            admin.endpoints.create(korora, self.korora_api.url,
                                   interface=interface,
                                   region=keystone.REGION)
        self.browser.login('admin', keystone.ADMIN_PASSWORD)

        # Live Migrate: compute-3 marked with its reason, not selectable.
        options, anchors = self.live_migrate_form(server, 'live-migrate')
        self.assertEqual({'AUTO_SCHEDULE', 'compute-2', 'compute-3'},
                         set(options))
        untrusted = options['compute-3']
        label = untrusted.get_attribute('textContent').strip()
        self.assertIn('compute-3 (untrusted: PCR sha256:10 = ', label)
        self.assertIn('not allowed by policy', label)
        self.assertEqual('true', untrusted.get_attribute('disabled'))
        self.assertEqual('none', anchors['compute-3'].value_of_css_property(
            'pointer-events'))
        self.assertEqual('compute-2', options['compute-2'].get_attribute(
            'textContent').strip())
        self.assertIsNone(options['compute-2'].get_attribute('disabled'))

        # A request naming compute-3 anyway (the select set by hand, as a
        # crafted POST would) is refused before Nova hears of it.
        self.browser.driver.execute_script(
            "var s = document.getElementById('id_host');"
            "s.querySelector('option[value=\"compute-3\"]')"
            ".disabled = false; s.value = 'compute-3';")
        self.browser.find('.modal-footer .btn-primary').click()
        self.browser.wait_for(lambda driver: self.browser.find_all(
            '.alert-danger, .error'))
        self.browser.screenshot('live-migrate-refused')
        refusal = self.browser.text('.alert-danger, .error')
        self.assertIn('Kororā refuses compute-3: ', refusal)
        self.assertIn('PCR sha256:10', refusal)
        self.assertEqual([], self.admin_api.get_migrations())
        self.assertEqual([], self.korora_records(server))

        # The trusted host, picked in the dropdown: the migration runs.
        options, anchors = self.live_migrate_form(server, 'live-migrate')
        self.browser.find('.themable-select .dropdown-toggle').click()
        self.browser.screenshot('live-migrate-hosts')
        anchors['compute-2'].click()
        self.assertEqual('compute-2', self.browser.find(
            'select#id_host').get_attribute('value'))
        self.browser.find('.modal-footer .btn-primary').click()
        self.browser.wait_for(lambda driver: self.browser.messages())
        self.assertIn('preparing the live migration',
                      self.browser.messages())
        self.wait_for_server(server, 'ACTIVE', host='compute-2')
        record = self.wait_for_new_final_record(server, set())
        self.assertEqual(states.COMMITTED, record.state)
        self.open('/admin/instances/', 'instances-after-migration')
        row = self.browser.row(server['id'])
        self.assertIn('compute-2', row)
        self.assertIn('Active', row)

        # A migration Kororā refuses after opening its record: the source,
        # compute-2, changed (Horizon's 2.1 call, made outside Horizon).
        # Its reason is on the instance page.
        self.change_host('compute-2')
        self.wait_for_trust('compute-2', False)
        known = self.record_uuids(server)
        self.assertRaises(nova_exceptions.ClientException,
                          self.live_migrate_novaclient, server,
                          host='compute-1', microversion='2.1')
        refused = self.wait_for_new_final_record(server, known)
        self.assertEqual(states.ABORTED, refused.state)
        self.open('/admin/instances/%s/detail?tab=instance_details__korora'
                  % server['id'], 'instance-korora-tab')
        self.assertEqual('ABORTED', self.browser.text(
            '.korora-stopped .korora-state'))
        reason = self.browser.text('.korora-stopped .korora-reason')
        self.assertEqual(refused.reason, reason)
        self.assertIn('compute-2: PCR sha256:10', reason)

        # korora-api gone: every host is refused with the reason, and the
        # panels say why instead of failing.
        self.korora_api.daemon.stop()
        options, anchors = self.live_migrate_form(server, 'korora-api-down')
        for host in ('compute-1', 'compute-3'):
            self.assertIn('%s (untrusted: korora-api: ' % host,
                          options[host].get_attribute('textContent'))
            self.assertEqual('true', options[host].get_attribute('disabled'))
        self.open('/admin/korora_host_trust/', 'host-trust-api-down')
        self.assertIn('Error: korora-api: ', self.browser.messages())
