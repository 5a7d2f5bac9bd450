"""Kororā's whole live-migration protocol inside real Nova 34 services.

Three fake vTPM computes run the hooked driver (KororaHookedFakeDriver);
each has its own swtpm and vTPM manager; the verifier's database is
SQLite. A live migration goes through Nova's API, conductor and
computes: mutual attestation, the certified key, the sealed secret, the
manifest signed by the source's TPM, verification on arrival, commit.
"""

import json

import fixtures
from oslo_messaging._drivers import impl_fake
from oslo_messaging.notify import _impl_test as test_notifier

from korora_nova.hooks import handover
from korora_nova.hypervisors import file_backend
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.tests.functional import nova_base
from korora_nova.tests.functional import test_host_trust_in_nova

SOURCE = 'compute-1'
DEST = 'compute-2'


class KororaMigrationTestBase(
        test_host_trust_in_nova.HostTrustInNovaTestBase):

    SCHEDULER_FILTERS = ('korora_nova.filters.TrustedVTPMFilter',)
    COMPUTE_DRIVER_CLASS = nova_base.KororaHookedFakeDriver

    def setUp(self):
        super().setUp()
        self.flags(driver=['test'], group='oslo_messaging_notifications')
        test_notifier.reset()
        self.addCleanup(test_notifier.reset)
        self.server = self.boot_server(self.vtpm_flavor, host=SOURCE)
        self.secret = self.driver(SOURCE).vtpm_secrets[self.server['id']]

    # what the tests look at

    def korora_record(self, server=None):
        """The server's newest Kororā migration record."""
        uuid = (server or self.server)['id']
        found = [r for r in records.list() if r.instance_uuid == uuid]
        self.assertTrue(found, 'no Korora migration of %s' % uuid)
        return found[0]

    def wait_for_final_record(self, server=None):
        def check():
            record = self.korora_record(server)
            return record if states.is_final(record.state) else None
        return self._poll(check, None, 'a final Korora migration state')

    def state_files(self, host, server=None):
        backend = file_backend.FileStateBackend(self.state_root, host)
        return backend.has_instance((server or self.server)['id'])

    def hosts_with_state(self, server=None):
        return [host for host in self.COMPUTE_HOSTS
                if self.state_files(host, server)]

    def path(self, host, name, server=None):
        return file_backend.FileStateBackend(self.state_root, host).path(
            (server or self.server)['id'], name)

    def integrity_notifications(self):
        return [message['payload']
                for _ctxt, message, priority, _retry
                in test_notifier.NOTIFICATIONS
                if message['event_type'] == 'korora.migration.'
                'integrity_failed' and priority == 'ERROR']


class TestLiveMigrationWithKorora(KororaMigrationTestBase):

    def assert_migrated_intact(self, migration, dest=DEST):
        self.assertEqual('completed', migration['status'])
        server = self.wait_for_server(self.server, 'ACTIVE', host=dest)
        self.assertEqual(dest, server['OS-EXT-SRV-ATTR:host'])
        record = self.wait_for_final_record()
        self.assertEqual(states.COMMITTED, record.state)
        steps = [entry.to_state for entry in records.history(record.uuid)]
        self.assertEqual(list(states.FORWARD), steps)
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        # The vTPM state exists once, on the destination, which holds the
        # same secret the source had.
        self.assertEqual([dest], self.hosts_with_state())
        self.assertEqual(self.secret,
                         self.driver(dest).vtpm_secrets[self.server['id']])
        return record

    def test_vtpm_server_moves_to_a_trusted_host_through_the_api(self):
        migration = self.live_migrate_api(self.server, host=DEST)
        record = self.assert_migrated_intact(migration)
        manifest = json.loads(record.manifest)['manifest']
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security'],
                         [name for name, _digest in manifest['items']])
        self.assertEqual((SOURCE, DEST),
                         (manifest['source_host'], manifest['dest_host']))

    def test_horizon_call_to_a_trusted_host(self):
        # Horizon and the nova CLI: python-novaclient at 2.1 with a host.
        migration = self.live_migrate_novaclient(self.server, host=DEST,
                                                 microversion='2.1')
        self.assert_migrated_intact(migration)

    def test_scheduler_picks_the_only_trusted_host(self):
        self.change_host('compute-3')
        self.wait_for_trust('compute-3', False)
        migration = self.live_migrate_sdk(self.server)
        self.assert_migrated_intact(migration, dest=DEST)

    def test_back_and_forth_uses_fresh_counters(self):
        self.assert_migrated_intact(
            self.live_migrate_api(self.server, host=DEST))
        first = self.korora_record()
        self.live_migrate_api(self.server, host=SOURCE)
        self.wait_for_server(self.server, 'ACTIVE', host=SOURCE)
        second = self.wait_for_final_record()
        self.assertEqual(states.COMMITTED, second.state)
        self.assertNotEqual(first.uuid, second.uuid)
        self.assertEqual([SOURCE], self.hosts_with_state())


class TestSecretOnTheBus(KororaMigrationTestBase):

    def setUp(self):
        super().setUp()
        self.messages = []
        real_deliver = impl_fake.FakeExchange.deliver_message
        real_reply = impl_fake.FakeIncomingMessage.reply
        test = self

        def deliver(exchange, topic, ctxt, message, *args, **kwargs):
            test.messages.append(json.dumps([ctxt, message], default=str))
            return real_deliver(exchange, topic, ctxt, message, *args,
                                **kwargs)

        def reply(incoming, reply=None, failure=None):
            test.messages.append(json.dumps(reply, default=str))
            return real_reply(incoming, reply, failure)

        self.useFixture(fixtures.MonkeyPatch(
            'oslo_messaging._drivers.impl_fake.FakeExchange.'
            'deliver_message', deliver))
        self.useFixture(fixtures.MonkeyPatch(
            'oslo_messaging._drivers.impl_fake.FakeIncomingMessage.reply',
            reply))

    def test_the_vtpm_secret_never_crosses_the_bus_in_clear(self):
        migration = self.live_migrate_api(self.server, host=DEST)
        self.assertEqual('completed', migration['status'])
        self.assertEqual(states.COMMITTED,
                         self.wait_for_final_record().state)
        passphrase = self.secret[1]
        carried = [m for m in self.messages if handover.PREFIX in m]
        # The sealed secret did travel (the hooks were on the path)...
        self.assertTrue(carried)
        # ...and the clear one never did, in any message or reply.
        self.assertTrue(self.messages)
        self.assertEqual([], [m for m in self.messages if passphrase in m])
        self.assertEqual(passphrase,
                         self.driver(DEST).vtpm_secrets[self.server['id']][1])


class TestQuarantine(KororaMigrationTestBase):

    def tamper(self, name, change):
        def in_flight(file_name, data):
            return change(data) if file_name == name else data
        self.driver(SOURCE).in_flight = in_flight

    def assert_quarantined(self, item):
        migration = self.live_migrate_api(self.server, host=DEST)
        self.assertEqual('error', migration['status'])
        record = self.wait_for_final_record()
        self.assertEqual(states.QUARANTINED, record.state)
        self.assertIn(item, record.reason)
        server = self.wait_for_server(self.server, 'ERROR')
        # Held on the destination, paused (power state 3), never resumed.
        self.assertEqual(DEST, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(3, server['OS-EXT-STS:power_state'])
        fault = self.server_fault(self.server, admin=True)
        self.assertIn('Korora quarantined the instance on %s' % DEST,
                      fault['message'])
        self.assertIn(item, fault['message'])
        notified = self.integrity_notifications()
        self.assertEqual([(self.server['id'], item)],
                         [(n['instance_uuid'], n['item']) for n in notified])
        # The source's copy is kept (not committed) for the operator.
        self.assertEqual([SOURCE, DEST], self.hosts_with_state())
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())

    def test_vtpm_state_altered_in_flight(self):
        self.tamper(file_backend.STATE_FILE,
                    lambda data: data[:-1] + bytes([data[-1] ^ 1]))
        self.assert_quarantined('vtpm-state')

    def test_nvram_altered_in_flight(self):
        self.tamper(file_backend.NVRAM_FILE, lambda data: data + b'\0')
        self.assert_quarantined('nvram')

    def test_domain_tpm_model_changed_in_flight(self):
        self.tamper(file_backend.DOMAIN_FILE,
                    lambda data: data.replace(b'tpm-crb', b'tpm-tis'))
        self.assert_quarantined('domain-security')

    def test_vtpm_state_dropped_in_flight(self):
        self.tamper(file_backend.STATE_FILE, lambda data: None)
        self.assert_quarantined('vtpm-state')
