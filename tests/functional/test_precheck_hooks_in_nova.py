"""Mutual attestation in Nova's live-migration pre-checks.

Below microversion 2.30 (Horizon's "Live Migrate Instance" sends none, so
2.1) and with a forced host up to 2.67, a named host skips the scheduler:
no filter sees it. These tests run without TrustedVTPMFilter to show
that the compute-side hooks alone refuse such a destination.
"""

import json

import fixtures
from nova.tests.functional.api import client as api_client
from novaclient import exceptions as nova_exceptions

from korora_nova.db import api as db
from korora_nova.hooks import driver as hooks_driver
from korora_nova.demo import nova_cloud
from korora_nova.migration import records
from korora_nova.migration import states
from tests.functional import test_host_trust_in_nova


class TestPrecheckHooks(test_host_trust_in_nova.HostTrustInNovaTestBase):

    SCHEDULER_FILTERS = ()
    COMPUTE_DRIVER_CLASS = nova_cloud.KororaHookedFakeDriver

    def setUp(self):
        super().setUp()
        self.server = self.boot_server(self.vtpm_flavor, host='compute-1')
        self.assertEqual('compute-1', self.server_host(self.server))

    def assert_refused(self, error, *words):
        message = str(error)
        for word in words:
            self.assertIn(word, message)
        server = self.wait_for_server(self.server, 'ACTIVE')
        self.assertEqual('compute-1', server['OS-EXT-SRV-ATTR:host'])
        # Nothing but the destination's own pre-check reached it, and the
        # vTPM secret never did.
        for host in ('compute-2', 'compute-3'):
            self.assertLessEqual(
                set(self.driver(host).call_names(self.server['id'])),
                {'check_can_live_migrate_destination'})
            self.assertNotIn(self.server['id'],
                             self.driver(host).vtpm_secrets)

    def test_horizon_call_to_an_untrusted_host_is_refused(self):
        self.change_host('compute-3')
        self.wait_for_trust('compute-3', False)
        error = self.assertRaises(
            nova_exceptions.ClientException, self.live_migrate_novaclient,
            self.server, host='compute-3', microversion='2.1')
        self.assert_refused(error, 'Korora: the destination host is not '
                            'trusted', 'compute-3: PCR sha256:10')

    def test_forced_host_to_an_untrusted_host_is_refused(self):
        self.change_host('compute-3')
        self.wait_for_trust('compute-3', False)
        # Below 2.34 the API waits for the pre-checks: the caller gets a
        # 400 with Kororā's reason.
        error = self.assertRaises(
            api_client.OpenStackApiException, self.live_migrate_api,
            self.server, host='compute-3', microversion='2.30', force=True)
        self.assertEqual(400, error.response.status_code)
        self.assert_refused(error, 'Korora: the destination host is not '
                            'trusted', 'compute-3: PCR sha256:10')

    def test_unenrolled_destination_is_refused(self):
        db.host_delete('compute-3')
        error = self.assertRaises(
            nova_exceptions.ClientException, self.live_migrate_novaclient,
            self.server, host='compute-3', microversion='2.1')
        self.assert_refused(error, 'destination host compute-3 is not '
                            'enrolled with korora-verifier')

    def test_untrusted_source_is_refused_by_the_destination(self):
        self.change_host('compute-1')
        self.wait_for_trust('compute-1', False)
        error = self.assertRaises(
            nova_exceptions.ClientException, self.live_migrate_novaclient,
            self.server, host='compute-2', microversion='2.1')
        self.assert_refused(error, 'Korora: the source host is not trusted',
                            'compute-1: PCR sha256:10')

    def test_trusted_named_host_is_reached(self):
        migration = self.live_migrate_novaclient(self.server,
                                                 host='compute-2',
                                                 microversion='2.1')
        self.assertEqual('completed', migration['status'])
        self.assertEqual('compute-2', self.server_host(self.server))
        # The verifier attested the source afresh for this migration, and
        # the destination by the quote of its request.
        self.assertGreaterEqual(len(db.verdicts_for_host('compute-1')), 2)
        record = records.list()[-1]
        details = [json.loads(entry.details)
                   for entry in records.history(record.uuid)
                   if entry.to_state == states.PEERS_ATTESTED]
        self.assertEqual('compute-2: trusted under policy %s v1'
                         % test_host_trust_in_nova.POLICY,
                         details[0]['dest_verdict'])


class TestKororaDriverShim(test_host_trust_in_nova.HostTrustInNovaTestBase):
    """compute_driver = korora.KororaDriver, as an operator sets it: Nova
    loads the shim installed below nova.virt, which hooks the driver named
    by [korora] base_compute_driver."""

    SCHEDULER_FILTERS = ()

    def configure_nova(self):
        super().configure_nova()
        # The verifier runs in this test process and needs its database:
        # the shim's refusal of a configured connection (and switching
        # the database off) is proven with a real driver load in a
        # process of its own (tests/unit/test_no_database.py).
        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.db.api.refuse_configured_connection',
            lambda conf, service: None))
        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.db.api.disable_db_access', lambda service: None))
        self.flags(compute_driver='korora.KororaDriver')
        self.flags(base_compute_driver='fake.' + nova_cloud.DRIVER_NAME,
                   group='korora')

    def test_nova_runs_the_hooked_base_driver(self):
        driver = self.driver('compute-1')
        self.assertIsInstance(driver, hooks_driver.LiveMigrationHooks)
        self.assertIsInstance(driver, nova_cloud.KororaVTPMFakeDriver)
        self.assertEqual('Korora' + nova_cloud.DRIVER_NAME,
                         type(driver).__name__)
        server = self.boot_server(self.vtpm_flavor, host='compute-1')
        self.change_host('compute-3')
        self.wait_for_trust('compute-3', False)
        # Every compute of this process reads the one [korora]
        # libvirt_hook_socket: compute-3's manager, the destination's,
        # signs its request to receive the server.
        self.flags(libvirt_hook_socket=self.managers['compute-3'].hook_socket,
                   group='korora')
        error = self.assertRaises(
            nova_exceptions.ClientException, self.live_migrate_novaclient,
            server, host='compute-3', microversion='2.1')
        self.assertIn('Korora: the destination host is not trusted',
                      str(error))
        self.assertEqual('compute-1', self.server_host(server))

    def test_a_compute_without_its_vtpm_manager_fails_closed(self):
        # As Nova loads it, the driver reaches its vTPM manager on
        # [korora] libvirt_hook_socket; none answers there: the
        # destination cannot sign its request, the verifier opens no
        # record and the server stays where it was.
        server = self.boot_server(self.vtpm_flavor, host='compute-1')
        migration = self.live_migrate_api(server, host='compute-2')
        self.assertIn(migration['status'], ('error', 'failed'))
        server = self.wait_for_server(server, 'ACTIVE')
        self.assertEqual('compute-1', server['OS-EXT-SRV-ATTR:host'])
        events = ' '.join(str(d) for _e, _r, d in
                          self.action_events(server))
        self.assertIn('the vTPM manager of this host cannot be reached',
                      events)
