"""The clear vTPM secret never crosses a real RabbitMQ, on any path.

Nova's API, conductor, scheduler and computes, and Kororā's vTPM
managers, talk over a real rabbitmq-server node (not the in-process fake
driver Nova's harness installs), with Nova's legacy and versioned
notifications on the same broker (``notification_format = both``,
``driver = messagingv2``). The node's firehose shows every message
published and delivered, as any client of the broker could read it. Over
a successful live migration and over every refusal and failure path, the
passphrase that encrypts the swtpm state shows 0 times, in any encoding.
A control message holding the passphrase's base64 form shows the capture
would find it.
"""

# Nova's functional package monkey-patches on import: nova_cloud first.
from korora_nova.demo import nova_cloud  # noqa: F401

import base64
import fnmatch

import fixtures
import libvirt
from nova import exception as nova_exception
from novaclient import exceptions as nova_exceptions
from testtools import content

from korora_nova import conf
from korora_nova.db import api as db
from korora_nova.hooks import handover
from korora_nova.hooks import precheck
from korora_nova.hypervisors import file_backend
from korora_nova.hypervisors import libvirt_migration
from korora_nova.migration import records
from korora_nova.migration import states
from tests.fixtures import firehose
from tests.fixtures import nova_rabbitmq
from tests.functional import (
    test_live_migration_hooks_in_nova as hooks_tests)

CONF = conf.CONF
SOURCE = hooks_tests.SOURCE
DEST = hooks_tests.DEST
#: Routing keys of Nova's RPC to a compute host (compute, compute-alt).
COMPUTE_TOPICS = 'compute*.%s'
#: Nova's libvirt driver's default live-migration flags: no TLS.
PLAIN_STREAM_FLAGS = (libvirt.VIR_MIGRATE_LIVE |
                      libvirt.VIR_MIGRATE_PEER2PEER |
                      libvirt.VIR_MIGRATE_PERSIST_DEST)


class SecretOnRabbitMQTestBase(nova_rabbitmq.OnRabbitMQ,
                               hooks_tests.KororaMigrationTestBase):
    """Kororā's flow in Nova 34, every service on a real RabbitMQ node
    whose firehose is collected in self.firehose."""

    def setUp(self):
        super().setUp()
        # Kororā's own notifications (integrity failures) on the bus too.
        self.flags(driver=['messagingv2', 'test'],
                   group='oslo_messaging_notifications')
        self.passphrase = self.secret[1]
        self.firehose = self.useFixture(firehose.FirehoseFixture(self.broker))

    # what crossed the bus

    def published(self, routing_key, containing=b''):
        """Messages published with a routing key matching routing_key (a
        shell pattern) whose body holds containing (bytes)."""
        found = []
        for message in self.firehose.snapshot():
            keys = [key.decode() if isinstance(key, bytes) else key
                    for key in message.headers.get('routing_keys', ())]
            if (message.routing_key.startswith('publish.') and
                    fnmatch.filter(keys, routing_key) and
                    containing in message.body):
                found.append(message)
        return found

    def assert_secret_never_on_bus(self, source_asked=True):
        """0 times in the capture, in any encoding; then the control: the
        same capture finds the passphrase's base64 form once published.

        source_asked: the destination went on to ask the source; False
        when the destination's own request was refused, so the source was
        never asked."""
        self.firehose.sync()
        captured = self.firehose.snapshot()
        # Nova's own RPC and Kororā's went through this broker.
        self.assertTrue(self.published(
            COMPUTE_TOPICS % DEST, b'check_can_live_migrate_destination'))
        self.assertEqual(source_asked, bool(self.published(
            COMPUTE_TOPICS % SOURCE, b'check_can_live_migrate_source')))
        if source_asked:
            # The verifier talked to the vTPM managers over the bus (the
            # source's quote, the destination's key).
            self.assertTrue(self.published(
                '%s.*' % CONF.korora.manager_topic, b'certify_migration_key'
            ) or self.published('%s.*' % CONF.korora.manager_topic,
                                b'attest'))
        self.assertEqual([], [
            (key, message.headers.get('routing_keys'), form)
            for key, form, message in self.firehose.find(self.passphrase,
                                                         captured)])
        self.addDetail('firehose', content.text_content(
            '%d traced messages (%d published), %d bytes, %d encodings '
            'searched, secret found 0 times' % (
                len(captured),
                len([m for m in captured
                     if m.routing_key.startswith('publish.')]),
                sum(len(m.body) for m in captured),
                len(firehose.encodings(self.passphrase)))))
        self.firehose.publish(self.control_message())
        self.firehose.sync()
        control = self.firehose.find(self.passphrase,
                                     self.firehose.snapshot()[len(captured):])
        self.assertLessEqual(
            {'base64@0', 'base64@1', 'base64@2', 'urlsafe-base64@1', 'hex'},
            {form for _key, form, _m in control})
        return captured

    def control_message(self):
        """The passphrase's base64 form, then its base64 forms inside
        longer values (each alignment) and its hex form."""
        plain = self.passphrase.encode()
        return b' '.join([base64.b64encode(plain),
                          base64.b64encode(b'x' + plain),
                          base64.b64encode(b'xy' + plain),
                          base64.urlsafe_b64encode(b'x' + plain + b'z'),
                          plain.hex().encode()])

    def assert_error_notified(self, event_type):
        """Nova published its legacy error notification of event_type (the
        one that carries the call's arguments) on the broker."""
        self.firehose.sync()
        self.assertTrue(self.published('notifications.error',
                                       event_type.encode()),
                        'no error notification %s on the bus' % event_type)

    def assert_refused_at_the_precheck(self, *words, recorded=True):
        """The API refuses (Horizon's call, synchronous below 2.34); the
        server stays on its source, the record is aborted (none was
        opened when not recorded: the destination's request was
        refused)."""
        error = self.assertRaises(
            nova_exceptions.ClientException, self.live_migrate_novaclient,
            self.server, host=DEST, microversion='2.1')
        for word in words:
            self.assertIn(word, str(error))
        server = self.wait_for_server(self.server, 'ACTIVE')
        self.assertEqual(SOURCE, server['OS-EXT-SRV-ATTR:host'])
        if recorded:
            self.assertEqual(states.ABORTED,
                             self.wait_for_final_record().state)
        else:
            self.assertEqual([], [r for r in records.list()
                                  if r.instance_uuid == self.server['id']])
        self.assertEqual([SOURCE], self.hosts_with_state())
        self.assertNotIn(self.server['id'], self.driver(DEST).vtpm_secrets)


class TestSecretNeverOnBus(SecretOnRabbitMQTestBase):

    def test_a_successful_migration(self):
        migration = self.live_migrate_api(self.server, host=DEST)
        self.assertEqual('completed', migration['status'])
        self.wait_for_server(self.server, 'ACTIVE', host=DEST)
        self.assertEqual(states.COMMITTED,
                         self.wait_for_final_record().state)
        # The destination holds the same passphrase: it crossed, sealed.
        self.assertEqual(self.passphrase,
                         self.driver(DEST).vtpm_secrets[self.server['id']][1])
        self.assert_secret_never_on_bus()
        # Sealed, it went to the destination (Nova's compute-alt topic).
        self.assertTrue(self.published(COMPUTE_TOPICS % DEST,
                                       handover.PREFIX.encode()))
        # Nova's versioned notifications were on this broker too.
        self.assertTrue(self.published('versioned_notifications.info',
                                       b'instance.live_migration_post'))

    def test_a_destination_with_changed_pcrs(self):
        self.change_host(DEST)
        self.wait_for_trust(DEST, False)
        # Its own signed request already fails its policy: the verifier
        # opens no record, and the source is never asked.
        self.assert_refused_at_the_precheck(
            'Korora: the destination host is not trusted', recorded=False)
        self.assert_error_notified('check_can_live_migrate_destination')
        self.assert_secret_never_on_bus(source_asked=False)

    def test_a_destination_not_enrolled(self):
        db.host_delete(DEST)
        self.assert_refused_at_the_precheck(
            'is not enrolled with korora-verifier', recorded=False)
        self.assert_secret_never_on_bus(source_asked=False)

    def test_the_destination_key_certification_fails(self):
        # The verifier checks the key with the destination's request,
        # before the source is asked: refused, and nothing of the secret
        # anywhere.
        hooks_tests.TestRefusals.replace_manager(
            self, DEST, certify_migration_key=(
                hooks_tests.TestRefusals.another_tpm_certifies(self)))
        self.assert_refused_at_the_precheck(
            "the destination's migration key is not certified by its "
            "attestation key")
        self.assert_error_notified('check_can_live_migrate_destination')
        self.assert_secret_never_on_bus(source_asked=False)

    def test_the_stream_check_refuses(self):
        # After the base driver put the secret into the check data: the
        # libvirt hooks' check on the flags Nova's libvirt driver uses by
        # default (no TLS).
        def check_stream(instance, data):
            refusal = libvirt_migration.stream_refusal(
                PLAIN_STREAM_FLAGS,
                CONF.korora.allow_unencrypted_migration_stream)
            if refusal:
                raise precheck.refuse(instance, refusal)

        self.driver(SOURCE)._korora_check_stream = check_stream
        self.assert_refused_at_the_precheck(
            'the migration stream would cross the network unencrypted')
        self.assert_error_notified('check_can_live_migrate_source')
        self.assert_secret_never_on_bus()

    def test_sealing_fails_after_the_base_driver_ran(self):
        # The last step on the source before its answer crosses the bus;
        # an unexpected error there (injected) is refused like any other.
        def seal(self_, record, key, secret):
            raise RuntimeError('the sealing failed (injected)')

        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.hooks.protocol.MigrationProtocol.seal', seal))
        self.assert_refused_at_the_precheck(
            'Korora: the pre-checks failed: the sealing failed (injected)')
        self.assert_error_notified('check_can_live_migrate_source')
        self.assert_secret_never_on_bus()

    def test_the_destination_fails_after_opening_the_secret(self):
        # Nova's driver on the destination fails once it holds the opened
        # secret (defining the libvirt secret, say).
        def pre_live_migration(self_, context, instance, *args, **kwargs):
            raise nova_exception.MigrationError(
                reason='the destination could not define the libvirt '
                       'secret (injected)')

        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.demo.nova_cloud.KororaVTPMFakeDriver.'
            'pre_live_migration', pre_live_migration))
        migration = self.live_migrate_api(self.server, host=DEST)
        self.assertIn(migration['status'], ('error', 'failed'))
        server = self.wait_for_server(self.server, 'ACTIVE')
        self.assertEqual(SOURCE, server['OS-EXT-SRV-ATTR:host'])
        self.assertIn(
            'could not define the libvirt secret (injected)',
            ' '.join(str(d) for _e, _r, d in
                     self.action_events(self.server)))
        self.assert_error_notified('pre_live_migration')
        self.assert_secret_never_on_bus()

    def test_a_quarantine_after_tampering(self):
        hooks_tests.TestQuarantine.tamper(
            self, file_backend.STATE_FILE,
            lambda data: data[:-1] + bytes([data[-1] ^ 1]))
        migration = self.live_migrate_api(self.server, host=DEST)
        self.assertEqual('error', migration['status'])
        self.assertEqual(states.QUARANTINED,
                         self.wait_for_final_record().state)
        self.wait_for_server(self.server, 'ERROR')
        self.firehose.sync()
        self.assertTrue(self.published(
            'notifications.error', b'korora.migration.integrity_failed'))
        self.assert_secret_never_on_bus()
