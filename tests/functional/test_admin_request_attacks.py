"""Attacks on korora-api's writes: anyone on the bus calls the verifier.

A real verifier endpoint with its SQLite database on a real RabbitMQ
node, a real vTPM manager on swtpm enrolled under a policy; the attacker
is a plain oslo.messaging client on the verifier's topic. Only a request
korora-api signed ([korora] api_public_keys), for exactly this operation
and these arguments, not expired and never carried out before, is
obeyed; every refusal is one line, and the database is unchanged.
"""

import json
import time
import uuid

from cryptography.hazmat.primitives.asymmetric import ec
import jwt
import oslo_messaging as messaging

from korora_nova.attestation import admin_request
from korora_nova.attestation import operator_answers
from korora_nova.attestation import results
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova.demo import services
from korora_nova import exception
from korora_nova import rpc
from korora_nova.rpcapi import verifier as verifier_rpcapi
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from tests import base
from tests.fixtures import rabbitmq

CONF = conf.CONF
HOST = 'compute-1'
POLICY = 'compute-2026-12'
OTHER_POLICY = 'compute-2027-01'
CALL_TIMEOUT = 30
REQUESTER = {'user_id': 'alice', 'project_id': 'admin-project',
             'request_id': 'req-%s' % uuid.uuid4()}


def forged(key, operation, arguments, issued=None, lifetime=30,
           issuer=admin_request.ISSUER, kid=None, algorithm='ES256'):
    """A token as korora-api's would be, signed with key (a private key,
    or None for no signature at all), issued at issued."""
    now = int(time.time()) if issued is None else issued
    body = {'iss': issuer, 'aud': admin_request.AUDIENCE, 'iat': now,
            'exp': now + lifetime, 'sub': operation,
            'jti': str(uuid.uuid4()), 'korora.kind': results.ADMIN_REQUEST,
            admin_request.OPERATION: operation,
            admin_request.ARGUMENTS: admin_request.arguments_digest(
                operation, arguments),
            admin_request.REQUESTER: REQUESTER}
    if key is None:
        return jwt.encode(body, None, algorithm='none')
    return jwt.encode(body, key, algorithm=algorithm,
                      headers={'kid': kid or results.es256_keys.key_id(
                          key.public_key())})


class AdminRequestAttackTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(rabbitmq.RabbitMQBusFixture(CONF))
        self.useFixture(services.VerifierDatabaseFixture())
        verifier_keys = self.useFixture(services.VerifierKeysFixture())
        self.verifier_key = verifier_keys.signer
        api_keys = self.useFixture(services.VerifierKeysFixture())
        self.flags(verifier_signing_key=verifier_keys.private_path,
                   verifier_public_keys=[verifier_keys.public_path],
                   api_public_keys=[api_keys.public_path])
        self.config.config(group='korora_api',
                           signing_key=api_keys.private_path)
        self.api_key = admin_request.load_signing_key(api_keys.private_path)
        self.verifier = self.useFixture(
            services.VerifierFixture(self.verifier_key))
        operator = self.useFixture(services.OperatorKeyFixture(CONF))
        tpm = self.useFixture(services.SoftwareTPMFixture())
        self.useFixture(services.VTPMManagerFixture(HOST, tpm))
        self.flags(ek_ca_bundle=tpm.ca_bundle)
        api = self.verifier.manager_api
        enrollment.enroll(api, HOST)
        attestation.record_policy(api, HOST, POLICY, 1, operator.key)
        attestation.record_policy(api, HOST, OTHER_POLICY, 1, operator.key)
        self.client = messaging.get_rpc_client(
            rpc.get_transport(), messaging.Target(
                topic=CONF.korora.verifier_topic, version='1.3'))
        self.head = db.audit_head().seq

    def send(self, token, policy=POLICY, method='admin_set_host_policy'):
        """set_host_policy(HOST, policy) as any bus client sends it."""
        return self.client.prepare(timeout=CALL_TIMEOUT).call(
            {}, method, admin_token=token, host=HOST, policy=policy)

    def refused(self, reason, token, **arguments):
        error = self.assertRaises(messaging.RemoteError, self.send, token,
                                  **arguments)
        self.assertEqual('NotAuthorized', error.exc_type)
        message = str(error.value).splitlines()[0]
        self.assertEqual('not authorized by the verifier: %s' % reason,
                         message)
        self.assertEqual(self.head, db.audit_head().seq)
        self.assertIsNone(db.host_get(HOST).policy_name)
        return message

    def arguments(self, policy=POLICY):
        return {'host': HOST, 'policy': policy}

    def genuine(self, operation='set_host_policy', arguments=None):
        return admin_request.sign(self.api_key, operation,
                                  arguments or self.arguments(), REQUESTER,
                                  30)


class TestAdminRequests(AdminRequestAttackTestCase):

    def test_a_signed_request_is_obeyed_and_its_requester_audited(self):
        verifier_rpcapi.VerifierAPI().admin_request(
            self.api_key, 'set_host_policy', self.arguments(), REQUESTER)
        self.assertEqual(POLICY, db.host_get(HOST).policy_name)
        entry = db.audit_head()
        self.assertEqual('policy-assign', entry.step)
        self.assertIn('"requested_by":{"project_id":"admin-project",'
                      '"request_id":"%s","user_id":"alice"}'
                      % REQUESTER['request_id'], entry.details)

    def test_unsigned(self):
        self.refused('the admin request is not signed by a key of [korora] '
                     'api_public_keys',
                     forged(None, 'set_host_policy', self.arguments()))

    def test_no_token_at_all(self):
        self.refused('the admin request is missing or larger than %d bytes'
                     % results.MAX_TOKEN, None)

    def test_signed_by_an_attackers_key(self):
        attacker = ec.generate_private_key(ec.SECP256R1())
        self.refused('the admin request is not signed by a key of [korora] '
                     'api_public_keys',
                     forged(attacker, 'set_host_policy', self.arguments()))

    def test_signed_by_an_attackers_key_under_the_pinned_key_id(self):
        attacker = ec.generate_private_key(ec.SECP256R1())
        self.refused('the admin request has a bad signature (forged or '
                     'altered)',
                     forged(attacker, 'set_host_policy', self.arguments(),
                            kid=self.api_key.kid))

    def test_signed_by_the_verifiers_own_key(self):
        # The verifier's key signs answers, never orders.
        self.refused('the admin request is not signed by a key of [korora] '
                     'api_public_keys',
                     forged(self.verifier_key._key, 'set_host_policy',
                            self.arguments()))

    def test_replayed(self):
        token = self.genuine()
        self.send(token)
        self.assertEqual(POLICY, db.host_get(HOST).policy_name)
        # The operator moves the host on; the attacker replays the first
        # request to move it back.
        verifier_rpcapi.VerifierAPI().admin_request(
            self.api_key, 'set_host_policy', self.arguments(OTHER_POLICY),
            REQUESTER)
        head = db.audit_head().seq
        error = self.assertRaises(messaging.RemoteError, self.send, token)
        self.assertEqual('NotAuthorized', error.exc_type)
        self.assertRegex(str(error.value).splitlines()[0],
                         r'^not authorized by the verifier: admin request '
                         r'[0-9a-f-]{36} was carried out already '
                         r'\(replayed\)$')
        self.assertEqual(OTHER_POLICY, db.host_get(HOST).policy_name)
        self.assertEqual(head, db.audit_head().seq)

    def test_edited_arguments(self):
        token = self.genuine(arguments=self.arguments(OTHER_POLICY))
        self.refused('the arguments of set_host_policy are not the ones '
                     'korora-api signed (altered on the way)', token,
                     policy=POLICY)

    def test_expired(self):
        token = forged(self.api_key._key, 'set_host_policy',
                       self.arguments(), issued=int(time.time()) - 120)
        self.refused('the admin request has expired', token)

    def test_another_operations_token(self):
        token = self.genuine('remove_host', {'host': HOST})
        self.refused('the admin request was signed for remove_host, not '
                     'set_host_policy', token)
        self.assertEqual(HOST, db.host_get(HOST).name)

    def test_another_issuer(self):
        token = forged(self.api_key._key, 'set_host_policy',
                       self.arguments(), issuer=results.ISSUER)
        self.refused('the admin request is not valid: Invalid issuer',
                     token)

    def test_a_verifier_that_pins_no_api_key_obeys_none(self):
        self.flags(api_public_keys=[])
        self.refused('[korora] api_public_keys is empty: this verifier '
                     'obeys no admin request from the bus', self.genuine())

    def test_a_client_pinned_below_1_3_refuses(self):
        self.config.config(group='upgrade_levels', korora_verifier='1.2')
        error = self.assertRaises(
            exception.ConfigurationError,
            verifier_rpcapi.VerifierAPI().admin_request, self.api_key,
            'set_host_policy', self.arguments(), REQUESTER)
        self.assertEqual('korora-api\'s writes need '
                         'verifier RPC API 1.3, above [upgrade_levels] '
                         'korora_verifier', str(error))
        self.assertIsNone(db.host_get(HOST).policy_name)


class TestAnchorAndQuoteRequests(AdminRequestAttackTestCase):
    """RPC API 1.4: admin_anchor_audit and admin_quote_host obey only
    korora-api's signature for exactly that host."""

    def call(self, method, token, host=HOST):
        return self.client.prepare(version='1.4', timeout=CALL_TIMEOUT).call(
            {}, method, admin_token=token, host=host)

    def refused_call(self, reason, method, token, host=HOST):
        error = self.assertRaises(messaging.RemoteError, self.call, method,
                                  token, host)
        self.assertEqual('NotAuthorized', error.exc_type)
        self.assertEqual('not authorized by the verifier: %s' % reason,
                         str(error.value).splitlines()[0])
        self.assertEqual(self.head, db.audit_head().seq)
        self.assertEqual([], db.audit_anchors())

    def test_a_signed_anchor_is_made_and_names_its_requester(self):
        anchor = verifier_rpcapi.VerifierAPI().admin_request(
            self.api_key, 'anchor_audit', {'host': HOST}, REQUESTER)
        entry = db.audit_head()
        self.assertEqual((self.head + 1, HOST, entry.entry_hash),
                         (anchor['seq'], anchor['host'],
                          anchor['entry_hash']))
        self.assertEqual('anchor-request', entry.step)
        self.assertIn('"user_id":"alice"', entry.details)
        self.assertEqual([entry.seq],
                         [row.seq for row in db.audit_anchors()])

    def test_an_unsigned_anchor(self):
        self.refused_call('the admin request is not signed by a key of '
                          '[korora] api_public_keys', 'admin_anchor_audit',
                          forged(None, 'anchor_audit', {'host': HOST}))

    def test_an_anchor_signed_for_another_host(self):
        token = self.genuine('anchor_audit', {'host': 'compute-2'})
        self.refused_call('the arguments of anchor_audit are not the ones '
                          'korora-api signed (altered on the way)',
                          'admin_anchor_audit', token)

    def test_a_replayed_anchor(self):
        token = self.genuine('anchor_audit', {'host': HOST})
        first = self.call('admin_anchor_audit', token)
        head = db.audit_head().seq
        error = self.assertRaises(messaging.RemoteError, self.call,
                                  'admin_anchor_audit', token)
        self.assertEqual('NotAuthorized', error.exc_type)
        self.assertIn('was carried out already (replayed)',
                      str(error.value))
        self.assertEqual(head, db.audit_head().seq)
        self.assertEqual([first['seq']],
                         [row.seq for row in db.audit_anchors()])

    def test_a_signed_quote_is_verified_values(self):
        quote = self.call('admin_quote_host',
                          self.genuine('quote_host', {'host': HOST}))
        self.assertEqual(HOST, quote['host'])
        # Exactly the values the policy recorded from the host holds.
        recorded = db.policy_get(POLICY)
        self.assertEqual(
            json.loads(recorded.document)['pcrs']['sha256'],
            {index: [value] for index, value in
             quote['pcr_values']['sha256'].items()})
        self.assertEqual(self.head, db.audit_head().seq)

    def test_an_unsigned_quote(self):
        self.refused_call('the admin request is not signed by a key of '
                          '[korora] api_public_keys', 'admin_quote_host',
                          forged(None, 'quote_host', {'host': HOST}))

    def test_a_quote_signed_for_another_host(self):
        token = self.genuine('quote_host', {'host': 'compute-2'})
        self.refused_call('the arguments of quote_host are not the ones '
                          'korora-api signed (altered on the way)',
                          'admin_quote_host', token)

    def test_a_quote_token_does_not_anchor(self):
        token = self.genuine('quote_host', {'host': HOST})
        self.refused_call('the admin request was signed for quote_host, not '
                          'anchor_audit', 'admin_anchor_audit', token)

    def test_a_client_pinned_below_1_4_refuses_them(self):
        self.config.config(group='upgrade_levels', korora_verifier='2027.1')
        for operation in ('anchor_audit', 'quote_host'):
            error = self.assertRaises(
                exception.ConfigurationError,
                verifier_rpcapi.VerifierAPI().admin_request, self.api_key,
                operation, {'host': HOST}, REQUESTER)
            self.assertEqual('korora-api\'s %s needs verifier RPC API 1.4, '
                             'above [upgrade_levels] korora_verifier'
                             % operation, str(error))
        self.assertEqual([], db.audit_anchors())


class TestSignedReads(AdminRequestAttackTestCase):
    """RPC API 1.5: with the client's nonce, the quote and the anchor
    carry the verifier's token for it, and korora-api's signature binds
    the nonce too."""

    def setUp(self):
        super().setUp()
        self.nonce = operator_answers.new_nonce()
        self.claim = results.nonce_claim(self.nonce)
        self.keys = results.TrustedKeys.load(
            CONF.korora.verifier_public_keys)

    def call(self, method, token, nonce):
        return self.client.prepare(version='1.5', timeout=CALL_TIMEOUT).call(
            {}, method, admin_token=token, host=HOST, nonce=nonce)

    def test_a_quote_with_a_nonce_is_signed_for_it(self):
        quote = verifier_rpcapi.VerifierAPI().admin_request(
            self.api_key, 'quote_host', {'host': HOST, 'nonce': self.claim},
            REQUESTER)
        self.assertEqual(
            {'host': HOST, 'pcr_values': quote['pcr_values'],
             'quoted_at': quote['quoted_at']},
            operator_answers.verified_quote(self.keys, quote['token'], HOST,
                                            self.nonce))
        # Bound to this read's nonce, not another's.
        self.assertRaises(exception.SignedResultError,
                          operator_answers.verified_quote, self.keys,
                          quote['token'], HOST, operator_answers.new_nonce())

    def test_an_anchor_with_a_nonce_is_signed_for_it(self):
        anchor = verifier_rpcapi.VerifierAPI().admin_request(
            self.api_key, 'anchor_audit', {'host': HOST, 'nonce': self.claim},
            REQUESTER)
        verified = operator_answers.verified_anchor(
            self.keys, anchor['token'], HOST, self.nonce)
        self.assertEqual((db.audit_head().seq, db.audit_head().entry_hash,
                          HOST),
                         (verified['seq'], verified['entry_hash'],
                          verified['host']))

    def test_a_nonce_korora_api_did_not_sign_is_refused(self):
        # An attacker on the bus swaps in a nonce of its own (to get a
        # token it can replay later): the admin request does not bind it.
        token = self.genuine('quote_host', {'host': HOST,
                                            'nonce': self.claim})
        other = results.nonce_claim(operator_answers.new_nonce())
        error = self.assertRaises(messaging.RemoteError, self.call,
                                  'admin_quote_host', token, other)
        self.assertEqual('NotAuthorized', error.exc_type)
        self.assertIn('the arguments of quote_host are not the ones '
                      'korora-api signed (altered on the way)',
                      str(error.value))

    def test_a_bad_nonce_is_refused_before_anything_is_anchored(self):
        for bad in ('short', 'A' * 87, '!' * 43):
            token = self.genuine('anchor_audit', {'host': HOST,
                                                  'nonce': bad})
            error = self.assertRaises(messaging.RemoteError, self.call,
                                      'admin_anchor_audit', token, bad)
            self.assertEqual('UsageError', error.exc_type)
            self.assertIn('the nonce must be 16 to 64 bytes in base64url',
                          str(error.value))
        self.assertEqual(self.head, db.audit_head().seq)
        self.assertEqual([], db.audit_anchors())

    def test_a_client_pinned_below_1_5_refuses_a_signed_read(self):
        self.config.config(group='upgrade_levels', korora_verifier='1.4')
        error = self.assertRaises(
            exception.ConfigurationError,
            verifier_rpcapi.VerifierAPI().admin_request, self.api_key,
            'quote_host', {'host': HOST, 'nonce': self.claim}, REQUESTER)
        self.assertEqual('korora-api\'s quote_host needs verifier RPC API '
                         '1.5, above [upgrade_levels] korora_verifier',
                         str(error))
