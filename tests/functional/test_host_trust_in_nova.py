"""Host trust inside real Nova 34 services.

API, conductor, scheduler with TrustedVTPMFilter, three fake vTPM computes
and Placement run in process; each compute host has its own swtpm and its
own korora vTPM manager; the verifier attests them over the same
in-process bus and keeps verdicts in a real SQLite database.
"""

import time


from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import session as ks_session
import oslo_messaging as messaging

from korora_nova.db import api as db
from korora_nova import rpc
from korora_nova.demo import cloud
from korora_nova.demo import nova_cloud
from korora_nova.verifier import attestation
from korora_nova.verifier import placement

POLICY = cloud.POLICY
WAIT = cloud.WAIT


class HostTrustInNovaTestBase(cloud.TrustedCloud):
    """The demo's trusted cloud, as the tests start it."""


class TestSchedulingOnTrustedHosts(HostTrustInNovaTestBase):

    def test_vtpm_servers_boot_only_on_trusted_hosts(self):
        for host in ('compute-2', 'compute-3'):
            self.change_host(host)
            self.wait_for_trust(host, False)
        hosts = {self.server_host(self.boot_server(self.vtpm_flavor))
                 for _ in range(3)}
        self.assertEqual({'compute-1'}, hosts)
        self.assertIn('not trusted vTPM destinations: ', self.filter_log())
        self.assertIn('compute-3 (untrusted: PCR sha256:10 = ',
                      self.filter_log())

    def test_a_host_whose_pcrs_change_drops_out(self):
        self.change_host('compute-2')
        summary = self.wait_for_trust('compute-2', False)[1]
        self.assertIn('not allowed by policy compute-2026-11 v1', summary)
        # The verifier records the verdict, then announces the change.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            announced = [(event, payload['trusted'])
                         for event, payload in self.notifications
                         if payload['host'] == 'compute-2']
            if announced[-1:] == [('korora.host.trust.update', False)]:
                break
            time.sleep(0.05)
        self.assertEqual([('korora.host.trust.update', False)],
                         announced[-1:])
        server = self.boot_server(self.vtpm_flavor, host='compute-2',
                                  expected_status='ERROR')
        self.assertIn('No valid host',
                      self.server_fault(server, admin=True)['message'])

    def test_instances_without_vtpm_are_not_filtered(self):
        self.change_host('compute-3')
        self.wait_for_trust('compute-3', False)
        plain = self.admin_api.post_flavor(
            {'flavor': {'name': 'plain', 'ram': 512, 'vcpus': 1,
                        'disk': 1}})['id']
        server = self.boot_server(plain, host='compute-3')
        self.assertEqual('compute-3', self.server_host(server))

    def test_a_flavor_can_ask_for_a_trusted_host(self):
        self.change_host('compute-3')
        self.wait_for_trust('compute-3', False)
        flavor = self.admin_api.post_flavor(
            {'flavor': {'name': 'trusted', 'ram': 512, 'vcpus': 1,
                        'disk': 1}})['id']
        self.admin_api.post_extra_spec(
            flavor, {'extra_specs': {'korora:trusted_host': 'required'}})
        server = self.boot_server(flavor, host='compute-3',
                                  expected_status='ERROR')
        self.assertIn('No valid host',
                      self.server_fault(server, admin=True)['message'])

    def test_a_stopped_verifier_means_no_host_qualifies(self):
        self.flags(trust_ttl=1, group='korora')
        self.stop_verifier()
        time.sleep(1.5)
        server = self.boot_server(self.vtpm_flavor, expected_status='ERROR')
        self.assertIn('No valid host',
                      self.server_fault(server, admin=True)['message'])
        self.assertIn('older than trust_ttl 1 s: is korora-verifier '
                      'running?', self.filter_log())


class TestLiveMigrationToTrustedHosts(HostTrustInNovaTestBase):

    def setUp(self):
        super().setUp()
        self.change_host('compute-3')
        self.wait_for_trust('compute-3', False)
        self.server = self.boot_server(self.vtpm_flavor)
        self.source = self.server_host(self.server)
        self.assertIn(self.source, ('compute-1', 'compute-2'))
        self.other = ({'compute-1', 'compute-2'} - {self.source}).pop()

    def test_no_host_named_lands_on_a_trusted_host(self):
        migration = self.live_migrate_api(self.server)
        self.assertEqual('completed', migration['status'])
        self.assertEqual(self.other, self.server_host(self.server))

    def test_novaclient_and_openstacksdk_land_on_trusted_hosts(self):
        # novaclient's servers.live_migrate: the nova CLI and Horizon.
        migration = self.live_migrate_novaclient(self.server,
                                                 microversion='2.90')
        self.assertEqual('completed', migration['status'])
        self.assertEqual(self.other, self.server_host(self.server))
        # openstacksdk's compute.live_migrate_server: `openstack server
        # migrate --live-migration`.
        migration = self.live_migrate_sdk(self.server)
        self.assertEqual('completed', migration['status'])
        self.assertEqual(self.source, self.server_host(self.server))

    def test_naming_an_untrusted_host_fails_and_the_server_stays(self):
        migration = self.live_migrate_api(self.server, host='compute-3',
                                          microversion='2.90')
        self.assertEqual('error', migration['status'])
        server = self.wait_for_server(self.server, 'ACTIVE')
        self.assertEqual(self.source, server['OS-EXT-SRV-ATTR:host'])
        self.assertRegex(self.filter_log(), 'not trusted vTPM destinations: '
                         '.*compute-3 [(]')

    def test_forged_trust_on_the_bus_changes_nothing(self):
        notifier = messaging.Notifier(
            rpc.get_notification_transport(), driver='messagingv2',
            publisher_id='korora-verifier.forged', topics=['notifications'])
        notifier.info({}, 'korora.host.trust.update',
                      {'host': 'compute-3', 'trusted': True,
                       'summary': 'compute-3: trusted'})
        # A forged PCR-change report only makes the verifier ask
        # compute-3's TPM again, which still says no.
        from korora_nova.rpcapi import verifier as verifier_rpcapi
        verifier_rpcapi.VerifierAPI().pcrs_changed('compute-3')
        time.sleep(0.5)
        self.assertFalse(db.host_trust_all()['compute-3'][0])
        migration = self.live_migrate_api(self.server, host='compute-3',
                                          microversion='2.90')
        self.assertEqual('error', migration['status'])
        self.assertEqual(self.source, self.server_host(self.server))


class TestPlacementTrait(HostTrustInNovaTestBase):
    """[korora] update_placement_traits: CUSTOM_KORORA_TRUSTED follows
    trust, so flavors that require it are pre-filtered by Placement."""

    def setUp(self):
        super().setUp()
        # Placement's noauth2 middleware takes the token "admin" as an
        # admin's (keystoneauth's own noauth plugin would send "notused").
        adapter = ks_adapter.Adapter(
            ks_session.Session(), service_type='placement',
            endpoint_override=self.placement_fixture.endpoint,
            additional_headers={'x-auth-token': 'admin'})
        self.traits = placement.PlacementTraits(self.flags_conf(), adapter)
        self.attestor.placement = self.traits
        # What the verifier announced when the hosts first became trusted.
        for host in self.COMPUTE_HOSTS:
            self.traits.set_trusted(host, True)

    def provider_traits(self, host):
        provider = self.traits._provider(host)
        response = self.traits._request(
            'GET', '/resource_providers/%s/traits' % provider)
        return set(response.json()['traits'])

    def wait_for_trait(self, host, present):
        """The verifier records the verdict, then tells Placement."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if (placement.TRAIT in self.provider_traits(host)) == present:
                return
            time.sleep(0.05)
        self.fail('%s: trait %s still %s after %s s' % (
            host, placement.TRAIT, 'absent' if present else 'present',
            WAIT))

    def test_trait_follows_trust(self):
        for host in self.COMPUTE_HOSTS:
            self.assertIn(placement.TRAIT, self.provider_traits(host))
        self.change_host('compute-2')
        self.wait_for_trust('compute-2', False)
        self.wait_for_trait('compute-2', False)
        self.assertIn(placement.TRAIT, self.provider_traits('compute-1'))
        # Nova's own traits stay as they were.
        self.assertIn('COMPUTE_SECURITY_TPM_2_0',
                      self.provider_traits('compute-2'))
        # The operator accepts the new measurement: trusted again.
        attestation.record_policy(self.manager_api, 'compute-2', POLICY, 2,
                                  self.operator.key)
        self.assertTrue(self.attestor.attest('compute-2').trusted)
        self.assertIn(placement.TRAIT, self.provider_traits('compute-2'))

    def test_placement_prefilters_on_the_trait(self):
        self.traits.set_trusted('compute-1', False)
        self.traits.set_trusted('compute-2', False)
        flavor = self.create_vtpm_flavor(extra_specs=dict(
            nova_cloud.VTPM_EXTRA_SPECS,
            **{'trait:%s' % placement.TRAIT: 'required'}))
        hosts = {self.server_host(self.boot_server(flavor))
                 for _ in range(2)}
        self.assertEqual({'compute-3'}, hosts)
