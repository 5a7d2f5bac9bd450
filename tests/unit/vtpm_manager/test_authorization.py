"""Who a vTPM manager answers: the verifier's signed challenges and
authorizations (korora_nova.vtpm_manager.authorization.Gate).

Real ES256 tokens signed with a verifier key of the test's own; tokens
of another key stand for whoever else is on the message bus. Every
refusal is in the manager's log, with its reason.
"""

import logging
import time

import fixtures
import jwt
from cryptography.hazmat.primitives import serialization

from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova import exception
from tests import base
from korora_nova.demo import services
from korora_nova.vtpm_manager import authorization

SOURCE = 'compute-1'
DEST = 'compute-2'
OTHER = 'compute-3'
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'
NONCE = bytes.fromhex('a7' * 32)

# Each action, and the host (by role) that may perform it.
ACTIONS = {results.CERTIFY_KEY: DEST, results.TRANSFER: DEST,
           results.VERIFY: DEST, results.MEASURE: SOURCE,
           results.COMMIT: SOURCE}


def migration(**changes):
    claims = {'uuid': MIGRATION, 'instance_uuid': INSTANCE,
              'source_host': SOURCE, 'dest_host': DEST,
              'source_nonce': '5e' * 32, 'dest_nonce': 'd1' * 32}
    claims.update(changes)
    return claims


class GateTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.keys = services.verifier_keys(self)
        self.signer = self.keys.signer
        self.log = self.useFixture(fixtures.FakeLogger(
            name=authorization.__name__, level=logging.INFO))
        self.gates = {host: authorization.Gate.from_conf(self.config.conf,
                                                         host)
                      for host in (SOURCE, DEST)}

    def stranger(self):
        """A signing key nobody pinned: someone on the bus."""
        folder = self.useFixture(fixtures.TempDir()).path
        return results.generate_signing_key(folder + '/stranger.pem')

    def challenge(self, host=DEST, nonce=NONCE, purpose_name='attest',
                  signer=None, lifetime=30):
        claims = {'korora.purpose': purpose_name}
        if nonce is not None:
            claims['eat_nonce'] = results.nonce_claim(nonce)
        return (signer or self.signer).sign(results.CHALLENGE, host,
                                            lifetime, claims)

    def authorization(self, action, host=None, role=None, signer=None,
                      lifetime=30, **claims):
        body = {'korora.action': action,
                'korora.role': role or results.ROLES[action],
                'korora.migration': migration(),
                'eat_nonce': results.nonce_claim(NONCE)}
        body.update(claims)
        return (signer or self.signer).sign(
            results.AUTHORIZATION, host or ACTIONS[action], lifetime, body)

    def refused(self, call, *args, reason, host=DEST, what=None):
        """call(*args) is refused for reason, and the refusal logged."""
        error = self.assertRaises(exception.NotAuthorized, call, *args)
        self.assertIn(reason, str(error))
        self.assertTrue(str(error).startswith('%s: ' % host), str(error))
        logged = [line for line in self.log.output.splitlines()
                  if reason in line]
        self.assertTrue(logged, 'not logged: %s\n%s'
                        % (reason, self.log.output))
        if what:
            self.assertIn('%s: %s refused: ' % (host, what), logged[-1])
        return error


class TestChallenges(GateTestCase):

    def test_purposes_a_quote_may_be_made_for(self):
        gate = self.gates[DEST]
        self.assertEqual((NONCE, purpose.ATTEST),
                         gate.challenge(self.challenge(), 'attest'))
        self.assertEqual((NONCE, purpose.ANCHOR), gate.challenge(
            self.challenge(purpose_name='anchor'), 'attest'))
        self.assertEqual('', self.log.output)

    def test_purposes_that_are_no_quotes_purpose_are_refused(self):
        # A manifest or a key certification is never quoted on request:
        # the manager makes their qualifying data itself.
        for name in ('manifest', 'arrival', 'certify', 'enroll', 'ATTEST',
                     '', None):
            self.refused(self.gates[DEST].challenge,
                         self.challenge(purpose_name=name), 'attest',
                         reason='the challenge names no purpose this '
                                'manager quotes for', what='attest')

    def test_nonce_bounds(self):
        gate = self.gates[DEST]
        self.assertEqual(b'n' * 64, gate.challenge(
            self.challenge(nonce=b'n' * 64), 'attest')[0])
        self.refused(gate.challenge, self.challenge(nonce=b'n' * 65),
                     'attest', reason='the challenge\'s nonce is 1 to 64 '
                                      'bytes')
        self.refused(gate.challenge, self.challenge(nonce=None), 'attest',
                     reason='the token carries no nonce')

    def test_a_challenge_for_another_host_is_refused(self):
        self.refused(self.gates[DEST].challenge, self.challenge(host=OTHER),
                     'attest', reason='the verifier\'s challenge is about '
                                      'compute-3, not compute-2',
                     what='attest')

    def test_unsigned_or_forged_challenges_are_refused(self):
        self.refused(self.gates[DEST].challenge,
                     self.challenge(signer=self.stranger()), 'attest',
                     reason='the answer is not signed by a pinned verifier '
                            'key')
        token = self.challenge()
        head, _, signature = token.rpartition('.')
        self.refused(self.gates[DEST].challenge,
                     head + '.' + signature[::-1], 'attest',
                     reason='the verifier\'s answer')
        for value in (None, '', 'not a token'):
            self.refused(self.gates[DEST].challenge, value, 'attest',
                         reason='the verifier\'s answer')

    def test_an_authorization_is_no_challenge(self):
        self.refused(self.gates[DEST].challenge,
                     self.authorization(results.TRANSFER), 'attest',
                     reason='a authorization was sent where a challenge was '
                            'expected')

    def test_an_expired_challenge_is_refused(self):
        with open(self.keys.private_path, 'rb') as handle:
            key = serialization.load_pem_private_key(handle.read(), None)
        now = int(time.time())
        token = jwt.encode(
            {'iss': results.ISSUER, 'iat': now - 120, 'exp': now - 60,
             'sub': DEST, 'korora.kind': results.CHALLENGE,
             'korora.purpose': 'attest',
             'eat_nonce': results.nonce_claim(NONCE)},
            key, algorithm='ES256', headers={'kid': self.signer.kid})
        self.refused(self.gates[DEST].challenge, token, 'attest',
                     reason='the verifier\'s answer has expired')


class TestEnrollment(GateTestCase):

    def test_an_enrollment_challenge(self):
        claims = self.gates[DEST].enrollment(
            self.challenge(purpose_name='enroll', nonce=None))
        self.assertEqual('enroll', claims['korora.purpose'])

    def test_an_attestation_challenge_does_not_enroll(self):
        self.refused(self.gates[DEST].enrollment, self.challenge(),
                     reason='the challenge is not for enrollment',
                     what='activate_credential')

    def test_another_hosts_or_an_unsigned_enrollment_is_refused(self):
        self.refused(self.gates[DEST].enrollment,
                     self.challenge(host=OTHER, purpose_name='enroll'),
                     reason='is about compute-3, not compute-2')
        self.refused(self.gates[DEST].enrollment,
                     self.challenge(purpose_name='enroll',
                                    signer=self.stranger()),
                     reason='not signed by a pinned verifier key')


class TestAuthorizations(GateTestCase):

    def test_each_action_by_the_host_in_its_role(self):
        for action, host in ACTIONS.items():
            claims = self.gates[host].authorize(self.authorization(action),
                                                action)
            self.assertEqual(action, claims['korora.action'])
            self.assertEqual(MIGRATION, claims['korora.migration']['uuid'])
            self.assertEqual(NONCE, self.gates[host].nonce_of(claims,
                                                              action))
        self.assertEqual('', self.log.output)

    def test_an_authorization_for_another_action_is_refused(self):
        token = self.authorization(results.VERIFY)
        for action in (results.TRANSFER, results.CERTIFY_KEY):
            self.refused(self.gates[DEST].authorize, token, action,
                         reason='the authorization is for verify',
                         what=action)
        # Refused for another action, it was not used up.
        self.gates[DEST].authorize(token, results.VERIFY)

    def test_the_host_must_play_the_actions_role(self):
        # The source asks for the destination's transfer: it is the
        # source of this migration, not its destination.
        self.refused(self.gates[SOURCE].authorize,
                     self.authorization(results.TRANSFER, host=SOURCE),
                     results.TRANSFER,
                     reason='the migration\'s destination is compute-2',
                     host=SOURCE, what=results.TRANSFER)
        self.refused(self.gates[DEST].authorize,
                     self.authorization(results.COMMIT, host=DEST),
                     results.COMMIT,
                     reason='the migration\'s source is compute-1')
        # A role claim that does not go with the action.
        self.refused(self.gates[DEST].authorize,
                     self.authorization(results.TRANSFER, role='source'),
                     results.TRANSFER,
                     reason='this host is not the destination of the '
                            'migration')

    def test_an_authorization_for_another_host_is_refused(self):
        token = self.authorization(results.TRANSFER, host=OTHER)
        self.refused(self.gates[DEST].authorize, token, results.TRANSFER,
                     reason='the verifier\'s authorization is about '
                            'compute-3, not compute-2')
        # Named for this host, but about a migration to another one.
        token = self.authorization(
            results.TRANSFER, **{'korora.migration': migration(
                dest_host=OTHER)})
        self.refused(self.gates[DEST].authorize, token, results.TRANSFER,
                     reason='the migration\'s destination is compute-3')

    def test_an_authorization_without_a_migration_is_refused(self):
        for value in (None, 'm-1', ['m-1'], {'instance_uuid': INSTANCE},
                      {'uuid': 5, 'dest_host': DEST}):
            self.refused(self.gates[DEST].authorize,
                         self.authorization(results.TRANSFER, **{
                             'korora.migration': value}),
                         results.TRANSFER,
                         reason='the authorization names no migration')

    def test_a_replayed_authorization_is_refused(self):
        token = self.authorization(results.MEASURE)
        self.gates[SOURCE].authorize(token, results.MEASURE)
        for _ in range(2):
            self.refused(self.gates[SOURCE].authorize, token,
                         results.MEASURE,
                         reason='the authorization was used already '
                                '(replayed)', host=SOURCE,
                         what=results.MEASURE)
        # A fresh authorization of the same step is another one.
        self.gates[SOURCE].authorize(self.authorization(results.MEASURE),
                                     results.MEASURE)

    def test_a_replay_within_the_clock_leeway_is_refused(self):
        # A token is believed until results.LEEWAY seconds after its
        # expiry: the gate remembers it that long.
        token = self.authorization(results.COMMIT, lifetime=1)
        self.gates[SOURCE].authorize(token, results.COMMIT)
        time.sleep(2.2)
        self.refused(self.gates[SOURCE].authorize, token, results.COMMIT,
                     reason='the authorization was used already '
                            '(replayed)', host=SOURCE)

    def test_unsigned_authorizations_are_refused(self):
        self.refused(self.gates[DEST].authorize,
                     self.authorization(results.TRANSFER,
                                        signer=self.stranger()),
                     results.TRANSFER,
                     reason='the answer is not signed by a pinned verifier '
                            'key', what=results.TRANSFER)
        # A result or a challenge of the verifier is no authorization.
        for kind in (results.RESULT, results.CHALLENGE):
            token = self.signer.sign(kind, DEST, 30, {
                'korora.action': results.TRANSFER,
                'korora.role': 'destination',
                'korora.migration': migration()})
            self.refused(self.gates[DEST].authorize, token,
                         results.TRANSFER,
                         reason='a %s was sent where a authorization was '
                                'expected' % kind)

    def test_an_authorization_without_an_id_is_refused(self):
        with open(self.keys.private_path, 'rb') as handle:
            key = serialization.load_pem_private_key(handle.read(), None)
        now = int(time.time())
        token = jwt.encode(
            {'iss': results.ISSUER, 'iat': now, 'exp': now + 30, 'sub': DEST,
             'korora.kind': results.AUTHORIZATION,
             'korora.action': results.TRANSFER,
             'korora.role': 'destination', 'korora.migration': migration()},
            key, algorithm='ES256', headers={'kid': self.signer.kid})
        self.refused(self.gates[DEST].authorize, token, results.TRANSFER,
                     reason='the authorization has no id')

    def test_the_number_of_remembered_authorizations_is_bounded(self):
        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.vtpm_manager.authorization.MAX_REMEMBERED', 2))
        gate = self.gates[DEST]
        for _ in range(2):
            gate.authorize(self.authorization(results.VERIFY),
                           results.VERIFY)
        self.refused(gate.authorize, self.authorization(results.VERIFY),
                     results.VERIFY,
                     reason='too many authorizations in use')
