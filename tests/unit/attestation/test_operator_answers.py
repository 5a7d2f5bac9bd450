"""The verifier's signed answers to an operator's reads (a host's
quoted PCR values, an audit anchor): the operator's client believes only
a token of the pinned verifier key, of the right kind, about the host it
asked of and bound to the nonce it drew. Real keys, real tokens; the
forgeries are the ones a broker client or a compromised korora-api
could send."""

import os

import fixtures

from korora_nova.attestation import operator_answers
from korora_nova.attestation import results
from korora_nova import exception
from tests import base

HOST = 'compute-1'
OTHER = 'compute-2'
VALUES = {'sha256': {'0': 'ab' * 32, '10': 'cd' * 32}}
QUOTED_AT = '2026-12-03T20:00:00Z'
ANCHOR = {'seq': 42, 'entry_hash': 'ef' * 32, 'host': HOST,
          'created_at': '2026-12-03T20:00:01Z'}


class OperatorAnswersTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        folder = self.useFixture(fixtures.TempDir()).path
        self.signer = results.generate_signing_key(
            os.path.join(folder, 'verifier.pem'))
        public = os.path.join(folder, 'verifier.pub.pem')
        results.write_public_key(self.signer, public)
        self.keys = results.TrustedKeys.load([public])
        self.attacker = results.generate_signing_key(
            os.path.join(folder, 'attacker.pem'))
        self.nonce = operator_answers.new_nonce()

    def quote(self, signer=None, host=HOST, nonce=None, values=VALUES):
        return operator_answers.sign_quote(
            signer or self.signer, host, values, QUOTED_AT,
            nonce or self.nonce, 60)

    def refused(self, message, call, *args):
        error = self.assertRaises(exception.SignedResultError, call, *args)
        self.assertEqual(message, str(error))


class TestQuotes(OperatorAnswersTestCase):

    def test_a_signed_quote_for_this_read_is_believed(self):
        self.assertEqual(
            {'host': HOST, 'pcr_values': VALUES, 'quoted_at': QUOTED_AT},
            operator_answers.verified_quote(self.keys, self.quote(), HOST,
                                            self.nonce))

    def test_an_attackers_key(self):
        self.refused('the answer is not signed by a pinned verifier key '
                     '([korora] verifier_public_keys)',
                     operator_answers.verified_quote, self.keys,
                     self.quote(self.attacker), HOST, self.nonce)

    def test_no_token(self):
        self.refused('the verifier\'s answer is missing or larger than '
                     '16384 bytes', operator_answers.verified_quote,
                     self.keys, None, HOST, self.nonce)

    def test_a_replayed_quote_of_an_earlier_read(self):
        earlier = self.quote(nonce=operator_answers.new_nonce())
        self.refused('the verifier\'s quoted-values is not bound to this '
                     'nonce (replayed?)', operator_answers.verified_quote,
                     self.keys, earlier, HOST, self.nonce)

    def test_another_hosts_quote(self):
        self.refused('the verifier\'s quoted-values is about compute-2, '
                     'not compute-1', operator_answers.verified_quote,
                     self.keys, self.quote(host=OTHER), HOST, self.nonce)

    def test_an_anchor_is_not_a_quote(self):
        anchor = operator_answers.sign_anchor(self.signer, ANCHOR,
                                              self.nonce, 60)
        self.refused('a audit-anchor was sent where a quoted-values was '
                     'expected', operator_answers.verified_quote, self.keys,
                     anchor, HOST, self.nonce)

    def test_malformed_values_even_if_signed(self):
        token = self.quote(values={'sha256': {'99': 'ab'}})
        error = self.assertRaises(exception.SignedResultError,
                                  operator_answers.verified_quote,
                                  self.keys, token, HOST, self.nonce)
        self.assertIn('the signed quote carries malformed PCR values',
                      str(error))


class TestAnchors(OperatorAnswersTestCase):

    def test_a_signed_anchor_for_this_read_is_believed(self):
        token = operator_answers.sign_anchor(self.signer, ANCHOR,
                                             self.nonce, 60)
        self.assertEqual(ANCHOR, operator_answers.verified_anchor(
            self.keys, token, HOST, self.nonce))

    def test_a_forged_anchor(self):
        token = operator_answers.sign_anchor(self.attacker, ANCHOR,
                                             self.nonce, 60)
        self.refused('the answer is not signed by a pinned verifier key '
                     '([korora] verifier_public_keys)',
                     operator_answers.verified_anchor, self.keys, token,
                     HOST, self.nonce)

    def test_a_malformed_anchor(self):
        token = operator_answers.sign_anchor(
            self.signer, dict(ANCHOR, entry_hash='short'), self.nonce, 60)
        self.refused('the signed anchor is malformed',
                     operator_answers.verified_anchor, self.keys, token,
                     HOST, self.nonce)


class TestNonces(base.TestCase):

    def test_a_clients_nonce_round_trips(self):
        nonce = operator_answers.new_nonce()
        self.assertEqual(nonce, operator_answers.nonce_from_claim(
            results.nonce_claim(nonce)))

    def test_short_long_and_garbled_nonces_are_refused(self):
        for claim in (results.nonce_claim(b'x' * 15),
                      results.nonce_claim(b'x' * 65), '!!!!', '', None):
            error = self.assertRaises(exception.UsageError,
                                      operator_answers.nonce_from_claim,
                                      claim)
            self.assertEqual('the nonce must be 16 to 64 bytes in '
                             'base64url', str(error))
