"""Kororā's whole live-migration protocol inside real Nova 34 services.

Three fake vTPM computes run the hooked driver (KororaHookedFakeDriver);
each has its own swtpm and vTPM manager; the verifier's database is
SQLite. A live migration goes through Nova's API, conductor and
computes: mutual attestation, the certified key, the sealed secret, the
manifest signed by the source's TPM, verification on arrival, commit.
"""

import json
import os
import subprocess
import threading

import fixtures
from nova import context as nova_context
from nova import objects
from novaclient import exceptions as nova_exceptions
import oslo_messaging as messaging
from oslo_messaging._drivers import impl_fake
from oslo_messaging.notify import _impl_test as test_notifier

from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova import conf
from korora_nova.hooks import commit
from korora_nova.hooks import handover
from korora_nova.hooks import recovery
from korora_nova.hypervisors import file_backend
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova import rpc
from korora_nova.demo import nova_cloud
from tests.functional import test_host_trust_in_nova
from tests.unit.migration import test_manage
from korora_nova.tpm import certify

CONF = conf.CONF
SOURCE = 'compute-1'
DEST = 'compute-2'


class KororaMigrationTestBase(
        test_host_trust_in_nova.HostTrustInNovaTestBase):

    SCHEDULER_FILTERS = ('korora_nova.filters.TrustedVTPMFilter',)
    COMPUTE_DRIVER_CLASS = nova_cloud.KororaHookedFakeDriver

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

    def test_operator_sees_the_timeline_and_checks(self):
        migration = self.live_migrate_api(self.server, host=DEST)
        record = self.assert_migrated_intact(migration)
        config = os.path.join(self.useFixture(fixtures.TempDir()).path,
                              'korora.conf')
        with open(config, 'w') as stream:
            stream.write('[korora_database]\nconnection = sqlite:///%s\n'
                         % self.database.path)
        shown = subprocess.run(
            [test_manage.KORORA_MANAGE, '--config-file', config,
             'migration', 'show', record.uuid], capture_output=True,
            text=True, timeout=test_manage.COMMAND_TIMEOUT)
        self.assertEqual(0, shown.returncode, shown.stderr)
        self.assertIn('state:          COMMITTED (final)', shown.stdout)
        self.assertIn("signed by compute-1's TPM, counter ", shown.stdout)
        self.assertIn(': signature valid\n  vtpm-state       sha256:',
                      shown.stdout)
        for step in ('request', 'attest-peers', 'certify-key', 'transfer',
                     'measure', 'verify-arrival', 'commit'):
            self.assertIn('(%s)' % step, shown.stdout)
        self.assertEqual(7, shown.stdout.count('  intact\n'))

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

    def test_two_servers_leave_one_host_at_once(self):
        # Both manifests may be bound to the same counter value of the
        # source; neither is a replay of the other.
        other = self.boot_server(self.vtpm_flavor, host=SOURCE)
        first = self.live_migrate_api(self.server, host=DEST, wait=False)
        second = self.live_migrate_api(other, host=DEST, wait=False)
        for server, marker in ((self.server, first), (other, second)):
            migration = self.wait_for_migration(server, newer_than=marker)
            self.assertEqual('completed', migration['status'])
            self.assertEqual(states.COMMITTED,
                             self.wait_for_final_record(server).state)
            self.assertEqual([DEST], self.hosts_with_state(server))

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


class TestSecretReplacedOnTheBus(KororaMigrationTestBase):
    """A control-plane attacker swaps the sealed secret for a clear one in
    the message that asks the destination to prepare."""

    def setUp(self):
        super().setUp()
        real_deliver = impl_fake.FakeExchange.deliver_message
        clear = self.secret[1]

        def deliver(exchange, topic, ctxt, message, *args, **kwargs):
            if message.get('method') == 'pre_live_migration':
                data = message['args']['migrate_data']['nova_object.data']
                data['vtpm_secret_value'] = clear
            return real_deliver(exchange, topic, ctxt, message, *args,
                                **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'oslo_messaging._drivers.impl_fake.FakeExchange.'
            'deliver_message', deliver))

    def test_a_clear_secret_is_refused_and_the_server_stays(self):
        migration = self.live_migrate_api(self.server, host=DEST)
        self.assertIn(migration['status'], ('error', 'failed'))
        server = self.wait_for_server(self.server, 'ACTIVE')
        self.assertEqual(SOURCE, server['OS-EXT-SRV-ATTR:host'])
        record = self.wait_for_final_record()
        self.assertEqual(states.ABORTED, record.state)
        self.assertIn('not sealed by Korora', record.reason)
        self.assertEqual([SOURCE], self.hosts_with_state())
        events = self.action_events(self.server)
        self.assertIn(
            'Korora: the destination could not take the vTPM secret: the '
            'vTPM secret is not sealed by Korora',
            ' '.join(str(details) for _e, _r, details in events))


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


class RogueEndpoint:
    """An RPC endpoint that lies: every method is the honest one's except
    those given as keyword arguments (a vTPM manager's, the verifier's)."""

    def __init__(self, honest, version, **lies):
        self.target = messaging.Target(version=version)
        self._honest = honest
        self._lies = lies

    def __getattr__(self, name):
        if name in self._lies:
            return self._lies[name]
        return getattr(self._honest, name)


class TestRefusals(KororaMigrationTestBase):
    """A destination that cheats is refused before any data moves."""

    def replace_manager(self, host, **lies):
        """Put a lying endpoint on the bus in place of host's manager."""
        honest = self.managers[host]
        honest.server.stop()
        honest.server.wait()
        server = rpc.get_server(CONF.korora.manager_topic, host,
                                [RogueEndpoint(honest.manager, '2.0', **lies)])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        return honest.manager

    def assert_refused_before_anything_moved(self, *words):
        error = self.assertRaises(
            nova_exceptions.ClientException, self.live_migrate_novaclient,
            self.server, host=DEST, microversion='2.1')
        for word in words:
            self.assertIn(word, str(error))
        server = self.wait_for_server(self.server, 'ACTIVE')
        self.assertEqual(SOURCE, server['OS-EXT-SRV-ATTR:host'])
        record = self.wait_for_final_record()
        self.assertEqual(states.ABORTED, record.state)
        self.assertEqual([SOURCE], self.hosts_with_state())
        self.assertNotIn(self.server['id'], self.driver(DEST).vtpm_secrets)
        self.assertLessEqual(
            set(self.driver(DEST).call_names(self.server['id'])),
            {'check_can_live_migrate_destination'})
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        # The admin finds the reason in the instance action too.
        details = ' '.join(str(d) for _e, _r, d in
                           self.action_events(self.server))
        self.assertIn('Korora: ', details)
        return record

    def another_tpm_certifies(self):
        """A certify_migration_key of a rogue DEST: root on compute-2
        reads the verifier's nonce and has the TPM of compute-3 certify a
        key over it."""
        honest = self.managers[DEST].manager
        other = self.managers['compute-3'].manager

        def certify_with_another_tpm(ctxt, authorization_token):
            claims = honest.gate.trusted_keys.verify(
                authorization_token, results.AUTHORIZATION, subject=DEST)
            key = certify.create_certified_storage_key(
                other.connection, other.ak, purpose.qualifying_data(
                    purpose.CERTIFY, results.nonce_bytes(
                        claims['eat_nonce'])))
            return {'public': rpc.encode(key.public),
                    'attestation': rpc.encode(key.attestation),
                    'signature': rpc.encode(key.signature),
                    'unique': rpc.encode(key.unique)}
        return certify_with_another_tpm

    def test_key_certified_by_another_tpm_is_refused(self):
        self.replace_manager(
            DEST, certify_migration_key=self.another_tpm_certifies())
        record = self.assert_refused_before_anything_moved(
            'Korora: the destination\'s migration key is not certified by '
            'its attestation key')
        self.assertIn('not certified', record.reason)

    # The verifier quotes the source when the destination requests the
    # migration; the destination's attestation is the quote that signs
    # its request (its replays: test_trust_boundary_attacks,
    # TestForgedMigrationRequests).

    def test_replayed_quote_is_refused(self):
        honest = self.managers[SOURCE].manager
        # A quote the verifier once asked for, kept by root on compute-1.
        old = honest.attest({}, self.verifier_keys.signer.sign(
            results.CHALLENGE, SOURCE, 60,
            {'eat_nonce': results.nonce_claim(b'\x01' * 32),
             'korora.purpose': 'attest'}))
        self.replace_manager(SOURCE, attest=lambda ctxt, challenge: old)
        record = self.assert_refused_before_anything_moved(
            'Korora: the source host is not trusted',
            'compute-1: nonce mismatch: stale or replayed evidence')
        self.assertIn('nonce mismatch', record.reason)

    def test_forged_trusted_verdict_is_refused(self):
        forged = {'trusted': True, 'verdict': 'trusted', 'host': SOURCE,
                  'summary': 'compute-1: trusted under policy %s'
                  % test_host_trust_in_nova.POLICY}
        self.replace_manager(SOURCE, attest=lambda ctxt, challenge: forged)
        self.assert_refused_before_anything_moved(
            'Korora: the source host is not trusted',
            'no valid quote')


class ServiceStopped(Exception):
    """Raised by a frozen hook once the test lets it go."""


class TestRestartBetweenStates(KororaMigrationTestBase):
    """A compute service stops right after a state is recorded; the
    computes start again and finish or roll the migration back.

    The stopped service is simulated by freezing the hook that recorded
    the state (it never runs another step while the test looks); the
    restart is what a starting nova-compute does: a fresh driver runs
    Korora's recovery (init_host). Nova's own record of where the
    instance runs decides the outcome.
    """

    def freeze_after(self, state=None, function='transition'):
        """Freeze the hook that records state (records.<function>), or
        the call of hooks.commit.commit when function is 'commit'."""
        self.reached = threading.Event()
        self.release = threading.Event()
        if function == 'commit':
            target = 'korora_nova.hooks.commit.commit'
            real = commit.commit
        else:
            target = 'korora_nova.migration.records.' + function
            real = getattr(records, function)

        def frozen(*args, **kwargs):
            if function == 'commit':
                self.freeze()
            result = real(*args, **kwargs)
            if function != 'commit' and result.state == state:
                self.freeze()
            return result

        self.useFixture(fixtures.MonkeyPatch(target, frozen))
        # Let the frozen call go before Nova's services stop.
        self.addCleanup(self.release.set)

    def freeze(self):
        if self.reached.is_set():
            return
        self.reached.set()
        self.release.wait(nova_cloud.NovaVTPMTestBase.TIMEOUT)
        raise ServiceStopped('the service stopped here')

    def restart_computes(self):
        """Run Korora's start-up recovery as the restarted computes do,
        the destination and the source in turn, until nothing changes.
        First what a restarted nova-compute of the server's host does
        itself (ComputeManager._init_instance): an interrupted live
        migration's task_state is reset."""
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), self.server['id'])
        instance.task_state = None
        instance.save()
        for _round in range(3):
            for host in (DEST, SOURCE):
                driver = self.COMPUTE_DRIVER_CLASS(
                    self.driver(host).virtapi)
                driver.korora_host = driver.host_name = host
                recovery.resume_all(driver, host)

    def run_and_stop_at(self, state, function='transition'):
        self.freeze_after(state, function)
        self.live_migrate_api(self.server, host=DEST, microversion='2.34',
                              wait=False)
        self.assertTrue(self.reached.wait(30), 'never reached %s' % state)
        self.assertEqual(state or states.VERIFIED, self.korora_record().state)
        self.restart_computes()
        record = self.korora_record()
        self.assertIn(record.state, (states.COMMITTED, states.ABORTED))
        nova_host = self.get_server(self.server)['OS-EXT-SRV-ATTR:host']
        # Exactly one copy of the vTPM state, where Nova runs the server.
        self.assertEqual([nova_host], self.hosts_with_state())
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        return record, nova_host

    def assert_rolled_back(self, state, function='transition'):
        record, nova_host = self.run_and_stop_at(state, function)
        self.assertEqual((states.ABORTED, SOURCE), (record.state, nova_host))
        self.assertIn('found %s by the recovery of' % state, record.reason)

    def test_stopped_after_requested(self):
        self.assert_rolled_back(states.REQUESTED, 'create')

    def test_stopped_after_peers_attested(self):
        self.assert_rolled_back(states.PEERS_ATTESTED)

    def test_stopped_after_key_certified(self):
        self.assert_rolled_back(states.KEY_CERTIFIED)

    def test_stopped_after_transferring(self):
        self.assert_rolled_back(states.TRANSFERRING)

    def test_stopped_after_measured(self):
        # The files crossed already; Nova still has the server on its
        # source, so the destination removes what it received.
        self.assert_rolled_back(states.MEASURED)

    def test_stopped_after_verified(self):
        self.assert_rolled_back(states.VERIFIED)

    def test_stopped_before_commit(self):
        # Nova completed the migration; the source stopped before it
        # committed: its restart commits.
        record, nova_host = self.run_and_stop_at(None, 'commit')
        self.assertEqual((states.COMMITTED, DEST),
                         (record.state, nova_host))
