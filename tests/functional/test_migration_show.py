"""The verifier's migration_show (RPC API 1.6), on a real RabbitMQ
broker with the real verifier and its SQLite database: a host that
takes part in a migration reads the verifier's signed record of it,
final or not, and the reading writes nothing; anyone else on the bus is
refused. A compute pinned below 1.6 reads the same state the 1.5 way.
"""

import os

import oslo_messaging as messaging

from korora_nova.attestation import results
from korora_nova import conf
from korora_nova import exception
from korora_nova.demo import services
from korora_nova.hooks import protocol
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova import rpc
from korora_nova.rpcapi import verifier as verifier_rpcapi
from tests import base
from tests.fixtures import rabbitmq

CONF = conf.CONF
SOURCE, DEST, OUTSIDER = 'compute-1', 'compute-2', 'compute-3'
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
CALL_TIMEOUT = 10


class TestMigrationShow(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(rabbitmq.RabbitMQBusFixture(CONF))
        self.useFixture(services.VerifierDatabaseFixture())
        signer = services.verifier_keys(self).signer
        self.trusted = results.TrustedKeys.of(signer)
        self.useFixture(services.VerifierFixture(signer))
        self.record = records.create(None, INSTANCE, SOURCE, DEST)
        # Anyone on the bus: a plain oslo.messaging client.
        self.client = messaging.get_rpc_client(
            rpc.get_transport(), messaging.Target(
                topic=CONF.korora.verifier_topic, version='1.6'))

    def shown(self, host=SOURCE):
        """The record as host's protocol object reads it."""
        steps = protocol.MigrationProtocol(
            host, verifier_rpcapi.VerifierAPI(), self.trusted, None)
        return steps.show(protocol.MigrationRecord(
            self.record.uuid, INSTANCE, SOURCE, DEST, self.record.state))

    def asked(self, host, migration_uuid):
        """migration_show as any bus client sends it: the claims of the
        answer, checked as a hook checks them."""
        nonce = os.urandom(32)
        token = self.client.prepare(timeout=CALL_TIMEOUT).call(
            {}, 'migration_show', migration_uuid=migration_uuid, host=host,
            nonce=rpc.encode(nonce))
        return self.trusted.verify(token, results.RESULT, subject=host,
                                   nonce=nonce)

    def abort_as_destination(self):
        records.transition(self.record.uuid, DEST, states.ABORTED,
                           reason='the arrival was never checked')

    def test_both_hosts_read_the_record_in_flight_and_final(self):
        self.assertEqual(states.REQUESTED, self.shown(SOURCE).state)
        self.abort_as_destination()
        entries = len(audit.entries(self.record.uuid))
        for host in (SOURCE, DEST):
            shown = self.shown(host)
            self.assertEqual((self.record.uuid, states.ABORTED),
                             (shown.uuid, shown.state))
        # Reading wrote nothing: the destination's abort is the last
        # entry, and the record keeps its reason.
        self.assertEqual(entries, len(audit.entries(self.record.uuid)))
        self.assertEqual('the arrival was never checked',
                         records.get(self.record.uuid).reason)

    def test_a_host_outside_the_migration_is_refused(self):
        claims = self.asked(OUTSIDER, self.record.uuid)
        affirmed, reasons = results.host_status(claims, OUTSIDER)
        self.assertFalse(affirmed)
        self.assertEqual(['compute-3 takes no part in migration %s'
                          % self.record.uuid], reasons)
        self.assertNotIn('korora.migration', claims)
        error = self.assertRaises(exception.StepRefused, self.shown,
                                  OUTSIDER)
        self.assertIn('takes no part', str(error))

    def test_an_unknown_migration_is_refused(self):
        claims = self.asked(SOURCE, '9e1c1d4e-0000-4000-8000-000000000000')
        affirmed, reasons = results.host_status(claims, SOURCE)
        self.assertFalse(affirmed)
        self.assertEqual(['no migration 9e1c1d4e-0000-4000-8000-000000000000 '
                          'is recorded'], reasons)

    def test_a_compute_pinned_at_1_5_reads_the_same_states(self):
        self.config.config(group='upgrade_levels', korora_verifier='1.5')
        self.assertEqual(states.REQUESTED, self.shown().state)
        self.abort_as_destination()
        entries = len(audit.entries(self.record.uuid))
        self.assertEqual(states.ABORTED, self.shown().state)
        # The 1.5 way asks for an abort, which leaves a final record
        # as it is.
        self.assertEqual(entries, len(audit.entries(self.record.uuid)))
        self.assertEqual([DEST], [
            entry.host for entry in audit.entries(self.record.uuid)
            if entry.to_state == states.ABORTED])
