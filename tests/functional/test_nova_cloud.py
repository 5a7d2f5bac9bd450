"""Self-tests of korora_nova.demo.nova_cloud: Nova 34 alone, no korora
code involved."""

from korora_nova.demo import nova_cloud

import openstack.exceptions
import os_traits

import nova.conf
from nova.scheduler import filters
from nova.tests.functional.api import client as api_client

#: Hosts RejectCompute3Filter was asked about, in order.
FILTERED_HOSTS = []


class RejectCompute3Filter(filters.BaseHostFilter):
    """Rejects compute-3 for every request; records what it sees."""

    def host_passes(self, host_state, spec_obj):
        FILTERED_HOSTS.append(host_state.host)
        return host_state.host != 'compute-3'


class VTPMComputesTest(nova_cloud.NovaVTPMTestBase):
    """Three vTPM fake computes; the three ways users live-migrate."""

    def test_computes_report_vtpm_traits(self):
        for host in self.COMPUTE_HOSTS:
            traits = self._get_provider_traits(
                self._get_provider_uuid_by_host(host))
            for trait in (os_traits.COMPUTE_SECURITY_TPM_2_0,
                          os_traits.COMPUTE_SECURITY_TPM_CRB,
                          os_traits.COMPUTE_SECURITY_TPM_SECRET_SECURITY_HOST):
                self.assertIn(trait, traits, host)

    def test_boot_and_live_migrate_without_host(self):
        server = self.boot_server()
        self.assertEqual('ACTIVE', server['status'])
        source = self.server_host(server)
        self.assertIn(source, self.COMPUTE_HOSTS)
        self.assertIn(server['id'], self.driver(source).instances)

        migration = self.live_migrate_api(server)

        self.assertEqual('completed', migration['status'])
        self.assertEqual(source, migration['source_compute'])
        destination = self.server_host(server)
        self.assertNotEqual(source, destination)
        self.assertEqual(destination, migration['dest_compute'])
        self.assertEqual('ACTIVE', self.server_status(server))
        # The guest moved: one copy, on the destination.
        self.assertNotIn(server['id'], self.driver(source).instances)
        self.assertIn(server['id'], self.driver(destination).instances)
        action = self.instance_action(server)
        self.assertEqual('live-migration', action['action'])

    def test_vtpm_secret_travels_like_libvirt(self):
        server = self.boot_server()
        source = self.server_host(server)
        secret = self.driver(source).vtpm_secrets[server['id']]

        self.live_migrate_api(server)

        destination = self.server_host(server)
        self.assertEqual(secret,
                         self.driver(destination).vtpm_secrets[server['id']])
        self.assertNotIn(server['id'], self.driver(source).vtpm_secrets)
        pre = [data for name, uuid, data in self.driver(destination).calls
               if name == 'pre_live_migration']
        self.assertEqual(secret, (pre[0].vtpm_secret_uuid,
                                  pre[0].vtpm_secret_value))
        self.assertEqual(
            ['check_can_live_migrate_source', 'live_migration',
             'post_live_migration', 'post_live_migration_at_source'],
            self.driver(source).call_names(server['id']))
        self.assertEqual(
            ['check_can_live_migrate_destination', 'pre_live_migration',
             'post_live_migration_at_destination'],
            self.driver(destination).call_names(server['id']))

    def test_novaclient_horizon_named_host_and_recent_without_host(self):
        server = self.boot_server()
        source = self.server_host(server)
        target = [h for h in self.COMPUTE_HOSTS if h != source][0]

        # Horizon's "Live Migrate Instance": microversion 2.1, a host.
        migration = self.live_migrate_novaclient(server, host=target)

        self.assertEqual('completed', migration['status'])
        self.assertEqual(target, self.server_host(server))

        migration = self.live_migrate_novaclient(server,
                                                 microversion='2.90')
        self.assertEqual('completed', migration['status'])
        self.assertNotEqual(target, self.server_host(server))

    def test_openstacksdk_live_migrate_server(self):
        server = self.boot_server()
        source = self.server_host(server)

        migration = self.live_migrate_sdk(server)

        self.assertEqual('completed', migration['status'])
        self.assertNotEqual(source, self.server_host(server))

    def test_user_secret_security_cannot_live_migrate(self):
        flavor = self.create_vtpm_flavor(
            extra_specs={'hw:tpm_secret_security': 'user'})
        server = self.boot_server(flavor_id=flavor)
        source = self.server_host(server)

        error = self.assertRaises(api_client.OpenStackApiException,
                                  self.live_migrate_api, server)

        self.assertEqual(400, error.response.status_code)
        self.assertIn('not supported for vTPM', error.response.text)
        self.assertEqual(source, self.server_host(server))
        self.assertEqual([], self.migrations(server))


class SchedulerFilterTest(nova_cloud.NovaVTPMTestBase):
    """A scheduler filter added through the configuration hook."""

    SCHEDULER_FILTERS = (__name__ + '.RejectCompute3Filter',)

    def setUp(self):
        del FILTERED_HOSTS[:]
        super().setUp()

    def test_filter_is_configured(self):
        group = nova.conf.CONF.filter_scheduler
        self.assertEqual(['nova.scheduler.filters.all_filters',
                          __name__ + '.RejectCompute3Filter'],
                         group.available_filters)
        # Nova's defaults, then the extra one.
        self.assertIn('ComputeFilter', group.enabled_filters)
        self.assertEqual('RejectCompute3Filter', group.enabled_filters[-1])

    def test_boot_honours_filter(self):
        server = self.boot_server(host='compute-3', expected_status='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIn('compute-3', FILTERED_HOSTS)

        server = self.boot_server()
        self.assertNotEqual('compute-3', self.server_host(server))

    def test_live_migration_without_host_honours_filter(self):
        server = self.boot_server(host='compute-1')
        del FILTERED_HOSTS[:]

        migration = self.live_migrate_api(server)

        self.assertEqual('completed', migration['status'])
        self.assertEqual('compute-2', self.server_host(server))
        self.assertIn('compute-3', FILTERED_HOSTS)

        migration = self.live_migrate_api(server)

        self.assertEqual('completed', migration['status'])
        self.assertEqual('compute-1', self.server_host(server))

    def test_named_host_is_filtered_from_2_30(self):
        server = self.boot_server(host='compute-1')
        del FILTERED_HOSTS[:]

        migration = self.live_migrate_api(server, host='compute-3')

        self.assertEqual('error', migration['status'])
        self.assertEqual(['compute-3'], FILTERED_HOSTS)
        self.assertEqual('compute-1', self.server_host(server))
        self.assertEqual('ACTIVE', self.server_status(server))
        # What the user sees: a failed action, no fault, no reason.
        action = self.instance_action(server)
        self.assertEqual('Error', action['message'])
        self.assertEqual(['Error'], [e['result'] for e in action['events']])
        self.assertNotIn('details', action['events'][0])
        self.assertIsNone(self.server_fault(server))
        # The admin sees the reason.
        self.assertEqual(
            [('conductor_live_migrate_instance', 'Error',
              'No valid host was found. There are not enough hosts '
              'available.')],
            self.action_events(server))

    def test_named_host_is_refused_synchronously_below_2_34(self):
        # openstacksdk's live_migrate_server speaks 2.30: the scheduler's
        # refusal comes back as a 400, and a migration in 'error' remains.
        server = self.boot_server(host='compute-1')

        error = self.assertRaises(
            openstack.exceptions.BadRequestException,
            self.live_migrate_sdk, server, host='compute-3')

        self.assertIn('No valid host', str(error))
        self.wait_for_migration(server, ['error'])
        self.assertEqual('compute-1', self.server_host(server))

    def test_named_host_at_2_1_skips_the_scheduler(self):
        # What Horizon sends: the filter never sees compute-3.
        server = self.boot_server(host='compute-1')
        del FILTERED_HOSTS[:]

        migration = self.live_migrate_novaclient(server, host='compute-3')

        self.assertEqual('completed', migration['status'])
        self.assertEqual('compute-3', self.server_host(server))
        self.assertEqual([], FILTERED_HOSTS)

    def test_forced_host_at_2_67_skips_the_scheduler(self):
        server = self.boot_server(host='compute-1')
        del FILTERED_HOSTS[:]

        migration = self.live_migrate_api(server, host='compute-3',
                                          microversion='2.67', force=True)

        self.assertEqual('completed', migration['status'])
        self.assertEqual('compute-3', self.server_host(server))
        self.assertEqual([], FILTERED_HOSTS)
