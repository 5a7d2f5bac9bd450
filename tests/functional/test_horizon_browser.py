"""korora-nova's Horizon plugin in a real browser.

Separate processes, as an operator runs them: Keystone 30 on SQLite
(KeystoneFixture), korora-api behind keystonemiddleware in Keystone's
catalog (KororaAPIServerFixture), Horizon 27 with the plugin
(HorizonFixture: ``django runserver``), and headless Chromium driven by
Selenium (Debian's chromium and chromium-driver). The verifier runs in
the test process on a real RabbitMQ node, with two vTPM managers on
their own swtpm: compute-1 trusted, compute-2 untrusted because a PCR
changed after it was enrolled. Migration records are the verifier's
own (migration.records), as tests/fixtures/api.py makes them.

Screenshots of every page go to ``$KORORA_TEST_ARTEFACTS`` (default
``.artefacts/`` in the tree). The class shares one set-up (about a
minute: Keystone's migrations are most of it).
"""

import json
import os

import fixtures
from oslo_config import fixture as config_fixture
from oslo_utils import uuidutils
import testtools
from testtools import content

from korora_nova.attestation import policy as policy_module
from korora_nova.client import v1
from korora_nova import conf
from korora_nova.demo import services
from korora_nova.migration import records
from korora_nova.migration import states
from tests.fixtures import api_server
from tests.fixtures import horizon
from tests.fixtures import keystone
from tests.fixtures import rabbitmq

CONF = conf.CONF
HOSTS = ('compute-1', 'compute-2')
# Enrolled, then removed behind the page's back by the Attest now test.
GONE = 'compute-3'
POLICY = 'compute-2026-12'
CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
WAIT = 30
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
FORWARD = (states.PEERS_ATTESTED, states.KEY_CERTIFIED, states.TRANSFERRING,
           states.MEASURED, states.VERIFIED, states.COMMITTED)


def artefacts_folder():
    folder = os.environ.get('KORORA_TEST_ARTEFACTS') or os.path.join(
        REPO, '.artefacts')
    os.makedirs(folder, exist_ok=True)
    return folder


def browser_missing():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return '%s is not installed (bindep.txt: chromium, ' \
                'chromium-driver)' % path
    return None


@testtools.skipIf(browser_missing(), browser_missing())
class TestHorizonPlugin(testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._class_fixtures = fixtures.Fixture()
        cls._class_fixtures.setUp()
        try:
            cls._start()
        except BaseException:
            cls._class_fixtures.cleanUp()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._class_fixtures.cleanUp()
        super().tearDownClass()

    @classmethod
    def _use(cls, fixture):
        return cls._class_fixtures.useFixture(fixture)

    @classmethod
    def _start(cls):
        cls._use(config_fixture.Config(CONF))
        CONF([], project='korora', default_config_files=[])
        cls._use(rabbitmq.RabbitMQBusFixture(CONF))
        cls._use(services.VerifierDatabaseFixture())
        keys = cls._use(services.VerifierKeysFixture())
        verifier = cls._use(services.VerifierFixture(keys.signer))
        operator = cls._use(services.OperatorKeyFixture(CONF))
        managers = {}
        for host in HOSTS + (GONE,):
            tpm = cls._use(services.SoftwareTPMFixture())
            managers[host] = cls._use(services.VTPMManagerFixture(host, tpm))
        CONF.set_override('ek_ca_bundle', tpm.ca_bundle, 'korora')
        cls.keystone = cls._use(keystone.KeystoneFixture())
        cls._use(api_server.KororaAPIServerFixture(cls.keystone))
        cls.client = client = v1.Client(cls.keystone.session('admin'))
        values = verifier.manager_api.attest(HOSTS[0], os.urandom(32))
        reference = policy_module.from_values(POLICY, 1,
                                              values.pcr_values)
        client.import_policy(reference.to_json(), operator.sign(reference))
        for host in HOSTS + (GONE,):
            client.enroll_host(host, policy=POLICY)
            client.attest_host(host)
        # A change on compute-2 after its enrollment: untrusted.
        managers[HOSTS[1]].extend_pcr(10, b'a module loaded later')
        client.attest_host(HOSTS[1])
        cls._migrations()
        cls.horizon = cls._use(horizon.HorizonFixture(cls.keystone))
        cls.browser = cls._browser()
        cls._login()

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

    @classmethod
    def _browser(cls):
        from selenium import webdriver
        from selenium.webdriver.chrome import service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ('--headless=new', '--no-sandbox',
                         '--disable-dev-shm-usage', '--disable-gpu',
                         '--window-size=1280,900'):
            options.add_argument(argument)
        browser = webdriver.Chrome(
            options=options, service=service.Service(CHROMEDRIVER))
        cls._class_fixtures.addCleanup(browser.quit)
        browser.implicitly_wait(0)
        return browser

    @classmethod
    def _login(cls):
        from selenium.webdriver.common import by

        browser = cls.browser
        browser.get(cls.horizon.url + '/auth/login/')
        browser.find_element(by.By.ID, 'id_username').send_keys('admin')
        browser.find_element(by.By.ID, 'id_password').send_keys(
            keystone.ADMIN_PASSWORD)
        browser.find_element(by.By.ID, 'loginBtn').click()
        cls._wait_for(lambda b: 'auth/login' not in b.current_url)

    @classmethod
    def _wait_for(cls, condition):
        from selenium.webdriver.support import ui

        return ui.WebDriverWait(cls.browser, WAIT).until(condition)

    def open(self, path, name):
        """Open a page, wait for it, save its screenshot."""
        from selenium.webdriver.common import by

        self.browser.get(self.horizon.url + path)
        self._wait_for(lambda b: b.find_elements(by.By.ID, 'content_body'))
        self.screenshot(name)

    def screenshot(self, name):
        path = os.path.join(artefacts_folder(), 'horizon-%s.png' % name)
        self.browser.save_screenshot(path)
        self.addDetail('screenshot-' + name,
                       content.text_content(path))

    def text(self, css):
        from selenium.webdriver.common import by

        return self.browser.find_element(by.By.CSS_SELECTOR, css).text

    def row(self, table, key):
        return self.text('tr[data-object-id="%s"]' % key)

    def messages(self):
        from selenium.webdriver.common import by

        return [alert.text for alert in self.browser.find_elements(
            by.By.CSS_SELECTOR, '.messages .alert')]

    def test_host_trust_shows_the_trusted_and_the_untrusted_host(self):
        self.open('/admin/korora_host_trust/', 'host-trust')
        self.assertIn('Host trust', self.browser.title)
        trusted = self.row('korora_hosts', HOSTS[0])
        self.assertIn('Trusted', trusted)
        self.assertIn(POLICY, trusted)
        untrusted = self.row('korora_hosts', HOSTS[1])
        self.assertIn('Untrusted', untrusted)
        self.assertIn('not allowed by policy %s v1' % POLICY, untrusted)
        self.assertIn('PCR sha256:10', untrusted)

    def attest(self, host):
        """Press Attest now on host's row; the messages shown."""
        from selenium.webdriver.common import by

        self.browser.find_element(
            by.By.CSS_SELECTOR,
            'button[value="korora_hosts__attest__%s"]' % host).click()
        self._wait_for(lambda b: self.messages())
        self.screenshot('attest-%s' % host)
        return ' '.join(self.messages())

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
        self.client.delete_host(GONE)
        shown = self.attest(GONE)
        self.assertIn('Error: Attesting %s failed: korora-api: host %s is '
                      'not enrolled (HTTP 404)' % (GONE, GONE), shown)
        self.assertEqual(1, shown.count('HTTP'))

    def test_secure_migrations_list_and_detail(self):
        from selenium.webdriver.common import by

        self.open('/admin/korora_secure_migrations/', 'secure-migrations')
        committed = self.row('korora_migrations', self.committed)
        self.assertIn('%s %s %s COMMITTED' % (self.instance, HOSTS[0],
                                              HOSTS[1]), committed)
        aborted = self.row('korora_migrations', self.aborted)
        self.assertIn('ABORTED', aborted)
        self.assertIn('the destination compute-1 is untrusted', aborted)
        self.browser.find_element(
            by.By.CSS_SELECTOR,
            'tr[data-object-id="%s"] a' % self.committed).click()
        self._wait_for(lambda b: b.find_elements(
            by.By.CSS_SELECTOR, '.korora-timeline'))
        self.screenshot('secure-migration-detail')
        timeline = self.text('.korora-timeline')
        self.assertEqual(
            ['REQUESTED'] + [state for state in FORWARD],
            [line.split()[0] for line in timeline.splitlines()[1:]])
        self.assertIn('Every entry is intact', self.text('.korora-audit'))
        self.assertIn('No manifest', self.text('.korora-manifest'))

    def test_a_manifest_that_does_not_hold_is_shown(self):
        self.open('/admin/korora_secure_migrations/%s/' % self.forged,
                  'secure-migration-forged')
        self.assertIn('MEASURED', self.text('.korora-state'))
        self.assertIn('The manifest does not hold: ',
                      self.text('.korora-manifest'))

    def test_an_unknown_migration_goes_back_to_the_list(self):
        missing = uuidutils.generate_uuid()
        self.open('/admin/korora_secure_migrations/%s/' % missing,
                  'secure-migration-missing')
        self.assertTrue(self.browser.current_url.endswith(
            '/admin/korora_secure_migrations/'))
        self.assertIn('(HTTP 404)', ' '.join(self.messages()))
