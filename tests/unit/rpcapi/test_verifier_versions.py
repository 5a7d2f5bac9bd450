"""Rolling upgrades of the verifier's RPC API: what a compute sends a
verifier of each version, as [upgrade_levels] korora_verifier caps it,
over oslo.messaging's in-process driver and over a real RabbitMQ node
(which brings the server's errors back differently)."""

import oslo_messaging as messaging

from korora_nova import conf
from korora_nova.demo import services
from korora_nova import exception
from korora_nova import rpc
from korora_nova.rpcapi import verifier as verifier_rpcapi
from tests import base
from tests.fixtures import rabbitmq

CONF = conf.CONF
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0e2b7c-3d1a-4c9e-8b6f-2a4d6c8e0f13'


class RecordingVerifier:
    """A verifier endpoint of one API version that records what each
    migration_request brought."""

    def __init__(self, version):
        self.target = messaging.Target(version=version)
        self.received = []

    def migration_request(self, ctxt, **arguments):
        self.received.append(sorted(arguments))
        return 'token'


class TestSignedRequestVersions(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(self.bus())

    def bus(self):
        return services.InProcessBusFixture(CONF)

    def serve(self, version):
        endpoint = RecordingVerifier(version)
        server = rpc.get_server(CONF.korora.verifier_topic, 'verifier-1',
                                [endpoint])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        return endpoint

    def request(self, pin=None):
        self.config.config(group='upgrade_levels', korora_verifier=pin)
        return verifier_rpcapi.VerifierAPI().migration_step(
            'migration_request', instance_uuid=INSTANCE, source='compute-1',
            dest='compute-2', signed_request='the signed request')

    def test_a_current_verifier_gets_the_signed_request(self):
        endpoint = self.serve('1.2')
        self.assertEqual('token', self.request()[1])
        self.assertEqual([['dest', 'instance_uuid', 'nonce',
                           'signed_request', 'source']], endpoint.received)

    def test_a_verifier_pinned_at_1_1_is_sent_none(self):
        endpoint = self.serve('1.1')
        self.assertEqual('token', self.request('1.1')[1])
        self.assertEqual([['dest', 'instance_uuid', 'nonce', 'source']],
                         endpoint.received)

    def test_an_unpinned_compute_and_an_old_verifier_fail_with_a_reason(self):
        endpoint = self.serve('1.1')
        error = self.assertRaises(exception.ConfigurationError, self.request)
        self.assertEqual('the verifier does not serve migration_request at '
                         'RPC API 1.2: until it is upgraded, set '
                         '[upgrade_levels] korora_verifier to its version',
                         str(error))
        self.assertEqual([], endpoint.received)

    def test_a_pin_below_the_migration_steps_is_refused(self):
        self.serve('1.2')
        error = self.assertRaises(exception.ConfigurationError, self.request,
                                  '2026.1')
        self.assertIn('Korora live migrations need verifier RPC API 1.1, '
                      'above [upgrade_levels] korora_verifier', str(error))

    def show(self, pin=None):
        self.config.config(group='upgrade_levels', korora_verifier=pin)
        return verifier_rpcapi.VerifierAPI().migration_step(
            'migration_show', migration_uuid=MIGRATION, host='compute-1')

    def test_an_unpinned_compute_and_a_1_5_verifier_cannot_show(self):
        self.serve('1.5')
        error = self.assertRaises(exception.ConfigurationError, self.show)
        self.assertEqual('the verifier does not serve migration_show at '
                         'RPC API 1.6: until it is upgraded, set '
                         '[upgrade_levels] korora_verifier to its version',
                         str(error))

    def test_a_compute_pinned_at_1_5_sends_no_migration_show(self):
        self.serve('1.6')
        error = self.assertRaises(exception.ConfigurationError, self.show,
                                  '1.5')
        self.assertEqual('migration_show needs verifier RPC API 1.6, above '
                         '[upgrade_levels] korora_verifier', str(error))
        self.assertFalse(verifier_rpcapi.VerifierAPI().can_send_step(
            'migration_show'))
        self.assertTrue(verifier_rpcapi.VerifierAPI().can_send_step(
            'migration_abort'))


class TestSignedRequestVersionsOnRabbitMQ(TestSignedRequestVersions):

    def bus(self):
        return rabbitmq.RabbitMQBusFixture(CONF)
