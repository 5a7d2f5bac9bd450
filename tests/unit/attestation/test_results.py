"""The verifier's signed answers (ES256 JWS): what a relying party
believes, and everything it refuses.

Real keys (cryptography), real tokens (PyJWT); forgeries are made the
way an attacker on the bus would make them: with another key, by
editing a token, or by hand with another algorithm.
"""

import base64
import hashlib
import hmac
import json
import os
import time

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization
import fixtures
import jwt

from korora_nova.attestation import es256_keys
from korora_nova.attestation import results
from korora_nova.attestation import verdict as verdict_module
from korora_nova import exception
from tests import base

HOST = 'compute-1'
OTHER = 'compute-2'
NONCE = bytes.fromhex('5e' * 32)

NOT_PINNED = ('the answer is not signed by a pinned verifier key ([korora] '
              'verifier_public_keys)')
FORGED = 'the verifier\'s answer has a bad signature (forged or altered)'
EXPIRED = 'the verifier\'s answer has expired'
NOT_A_TOKEN = 'the verifier\'s answer is not a signed token'
OVERSIZED = 'the verifier\'s answer is missing or larger than 16384 bytes'


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def b64url_json(value):
    return b64url(json.dumps(value, separators=(',', ':')).encode('ascii'))


def segments(token):
    header, payload, signature = token.split('.')
    pad = lambda text: text + '=' * (-len(text) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(header))),
            json.loads(base64.urlsafe_b64decode(pad(payload))), signature)


class ResultsTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.signer, self.private_path, self.public_path = self.new_key(
            'verifier')
        self.trusted = results.TrustedKeys.load([self.public_path])

    def new_key(self, name):
        private = os.path.join(self.folder, name + '.pem')
        public = os.path.join(self.folder, name + '.pub.pem')
        signer = results.generate_signing_key(private)
        results.write_public_key(signer, public)
        return signer, private, public

    def private_key(self, path=None):
        with open(path or self.private_path, 'rb') as handle:
            return serialization.load_pem_private_key(handle.read(), None)

    def claims(self, **changes):
        now = int(time.time())
        body = {'iss': results.ISSUER, 'iat': now, 'exp': now + 60,
                'sub': HOST, 'jti': 'j-1', 'korora.kind': results.RESULT}
        body.update(changes)
        return body

    def refused(self, token, message, kind=results.RESULT, trusted=None,
                **checks):
        error = self.assertRaises(exception.SignedResultError,
                                  (trusted or self.trusted).verify, token,
                                  kind, **checks)
        self.assertIn(message, str(error))
        return error


class TestRoundTrip(ResultsTestCase):

    def test_signed_result_verifies_with_its_claims(self):
        token = self.signer.sign(results.RESULT, HOST, 30,
                                 {'korora.migration': {'uuid': 'm-1'}})
        claims = self.trusted.verify(token, results.RESULT, subject=HOST)
        self.assertEqual(HOST, claims['sub'])
        self.assertEqual(results.RESULT, claims['korora.kind'])
        self.assertEqual(results.ISSUER, claims['iss'])
        self.assertEqual(results.EAR_PROFILE, claims['eat_profile'])
        self.assertEqual(30, claims['exp'] - claims['iat'])
        self.assertEqual({'uuid': 'm-1'}, claims['korora.migration'])
        header, _, _ = segments(token)
        self.assertEqual('ES256', header['alg'])
        self.assertEqual(self.signer.kid, header['kid'])

    def test_each_token_has_an_id_of_its_own(self):
        first = self.trusted.verify(self.signer.sign(results.RESULT, HOST,
                                                     30), results.RESULT)
        second = self.trusted.verify(self.signer.sign(results.RESULT, HOST,
                                                      30), results.RESULT)
        self.assertNotEqual(first['jti'], second['jti'])

    def test_the_verifier_checks_its_own_tokens(self):
        token = self.signer.sign(results.CHALLENGE, HOST, 30)
        self.assertEqual(HOST, results.TrustedKeys.of(self.signer).verify(
            token, results.CHALLENGE)['sub'])

    def test_expected_claims(self):
        token = self.signer.sign(results.AUTHORIZATION, HOST, 30,
                                 {'korora.action': results.MEASURE})
        self.trusted.verify(token, results.AUTHORIZATION,
                            expected={'korora.action': results.MEASURE})
        self.refused(token, 'the verifier\'s authorization is not for this '
                            'action (measure)', results.AUTHORIZATION,
                     expected={'korora.action': results.COMMIT})

    def test_unknown_kinds_are_not_signed(self):
        self.assertRaises(ValueError, self.signer.sign, 'anything', HOST, 30)


class TestForgeries(ResultsTestCase):

    def test_another_key_under_the_pinned_key_id(self):
        other, _, _ = self.new_key('attacker')
        token = jwt.encode(self.claims(), other._key, algorithm='ES256',
                           headers={'kid': self.signer.kid})
        self.refused(token, FORGED)

    def test_another_key_under_its_own_key_id(self):
        other, _, _ = self.new_key('attacker')
        self.refused(other.sign(results.RESULT, HOST, 30), NOT_PINNED)

    def test_an_altered_payload(self):
        token = self.signer.sign(results.RESULT, OTHER, 30, {
            'submods': {OTHER: {'ear.status': results.CONTRAINDICATED}}})
        header, payload, signature = token.split('.')
        _, claims, _ = segments(token)
        claims['submods'][OTHER]['ear.status'] = results.AFFIRMING
        altered = '.'.join((header, b64url_json(claims), signature))
        self.refused(altered, FORGED)
        self.assertEqual(results.CONTRAINDICATED, self.trusted.verify(
            token, results.RESULT)['submods'][OTHER]['ear.status'])

    def test_a_truncated_or_flipped_signature(self):
        token = self.signer.sign(results.RESULT, HOST, 30)
        head, _, signature = token.rpartition('.')
        raw = bytearray(base64.urlsafe_b64decode(
            signature + '=' * (-len(signature) % 4)))
        raw[5] ^= 1
        self.refused(head + '.' + b64url(bytes(raw)), FORGED)
        self.refused(head + '.' + signature[:-8], 'the verifier\'s answer')
        self.refused(head + '.', 'the verifier\'s answer')

    def test_alg_none_is_refused(self):
        token = '.'.join((b64url_json({'alg': 'none', 'typ': 'JWT',
                                       'kid': self.signer.kid}),
                          b64url_json(self.claims()), ''))
        self.refused(token, NOT_PINNED)

    def test_hs256_with_the_public_key_as_secret_is_refused(self):
        with open(self.public_path, 'rb') as handle:
            secret = handle.read()
        signing_input = '.'.join((
            b64url_json({'alg': 'HS256', 'typ': 'JWT',
                         'kid': self.signer.kid}),
            b64url_json(self.claims())))
        mac = hmac.new(secret, signing_input.encode('ascii'),
                       hashlib.sha256).digest()
        self.refused(signing_input + '.' + b64url(mac), NOT_PINNED)

    def test_es256_header_over_an_hmac_signature_is_refused(self):
        with open(self.public_path, 'rb') as handle:
            secret = handle.read()
        signing_input = '.'.join((
            b64url_json({'alg': 'ES256', 'typ': 'JWT',
                         'kid': self.signer.kid}),
            b64url_json(self.claims())))
        mac = hmac.new(secret, signing_input.encode('ascii'),
                       hashlib.sha256).digest()
        self.refused(signing_input + '.' + b64url(mac), 'the verifier\'s')
        self.assertRaises(exception.SignedResultError, self.trusted.verify,
                          signing_input + '.' + b64url(mac), results.RESULT)

    def test_unknown_or_missing_key_id(self):
        key = self.private_key()
        for headers in ({'kid': 'not-a-pinned-key'}, {}):
            token = jwt.encode(self.claims(), key, algorithm='ES256',
                               headers=headers or None)
            self.refused(token, NOT_PINNED)

    def test_headers_of_the_wrong_type_are_refused(self):
        for header, message in (
                ({'alg': 'ES256', 'kid': [self.signer.kid]}, NOT_A_TOKEN),
                ({'alg': 'ES256', 'kid': {'k': 1}}, NOT_A_TOKEN),
                ({'alg': ['ES256'], 'kid': self.signer.kid}, NOT_PINNED)):
            token = '.'.join((b64url_json(header),
                              b64url_json(self.claims()), 'AAAA'))
            self.refused(token, message)

    def test_another_issuer_is_refused(self):
        token = jwt.encode(self.claims(iss='someone-else'),
                           self.private_key(), algorithm='ES256',
                           headers={'kid': self.signer.kid})
        self.refused(token, 'the verifier\'s answer is not valid: Invalid '
                            'issuer')

    def test_required_claims(self):
        for missing in ('exp', 'iat', 'sub', 'iss'):
            claims = self.claims()
            del claims[missing]
            token = jwt.encode(claims, self.private_key(), algorithm='ES256',
                               headers={'kid': self.signer.kid})
            self.refused(token, 'the verifier\'s answer is not valid: ')
            self.refused(token, missing)


class TestBoundTo(ResultsTestCase):

    def test_expired(self):
        now = int(time.time())
        token = jwt.encode(self.claims(iat=now - 120, exp=now - 60),
                           self.private_key(), algorithm='ES256',
                           headers={'kid': self.signer.kid})
        self.refused(token, EXPIRED)

    def test_a_little_clock_skew_is_tolerated(self):
        now = int(time.time())
        token = jwt.encode(self.claims(iat=now - 10, exp=now - 2),
                           self.private_key(), algorithm='ES256',
                           headers={'kid': self.signer.kid})
        self.assertEqual(HOST, self.trusted.verify(token,
                                                   results.RESULT)['sub'])

    def test_wrong_kind(self):
        for signed, expected in ((results.CHALLENGE, results.RESULT),
                                 (results.RESULT, results.AUTHORIZATION),
                                 (results.AUTHORIZATION, results.CHALLENGE)):
            token = self.signer.sign(signed, HOST, 30)
            self.refused(token, 'a %s was sent where a %s was expected'
                         % (signed, expected), expected)

    def test_wrong_subject(self):
        token = self.signer.sign(results.RESULT, OTHER, 30)
        self.refused(token, 'the verifier\'s attestation-result is about '
                            'compute-2, not compute-1', subject=HOST)
        self.trusted.verify(token, results.RESULT, subject=OTHER)

    def test_wrong_or_missing_nonce(self):
        token = self.signer.sign(results.RESULT, HOST, 30, {
            'eat_nonce': results.nonce_claim(NONCE)})
        claims = self.trusted.verify(token, results.RESULT, nonce=NONCE)
        self.assertEqual(NONCE, results.nonce_bytes(claims['eat_nonce']))
        replayed = ('the verifier\'s attestation-result is not bound to this '
                    'nonce (replayed?)')
        self.refused(token, replayed, nonce=b'another nonce')
        self.refused(self.signer.sign(results.RESULT, HOST, 30), replayed,
                     nonce=NONCE)

    def test_nonce_claims(self):
        self.assertEqual('Xl5e', results.nonce_claim(b'^^^'))
        self.assertNotIn('=', results.nonce_claim(b'\xff' * 31))
        for nonce in (b'\x00', b'\xfb\xff' * 16, os.urandom(64)):
            self.assertEqual(nonce, results.nonce_bytes(
                results.nonce_claim(nonce)))
        for claim in (None, '', 5, 'x' * 129, ['Xl5e'], 'a'):
            error = self.assertRaises(exception.SignedResultError,
                                      results.nonce_bytes, claim)
            self.assertIn('nonce', str(error))


class TestBadTokens(ResultsTestCase):

    def test_oversized(self):
        token = self.signer.sign(results.RESULT, HOST, 30,
                                 {'padding': 'p' * results.MAX_TOKEN})
        self.assertGreater(len(token), results.MAX_TOKEN)
        self.refused(token, OVERSIZED)

    def test_missing(self):
        token = self.signer.sign(results.RESULT, HOST, 30)
        for value in ('', None, token.encode('ascii'), ['token'], 5):
            self.refused(value, OVERSIZED)

    def test_not_a_token(self):
        for value in ('not a token', 'a.b.c', '...', '\u00e9' * 20,
                      '{"alg": "ES256"}'):
            self.refused(value, NOT_A_TOKEN)
        # An empty header and body parse, but name no pinned key.
        self.refused('e30.e30.', NOT_PINNED)


class TestKeys(ResultsTestCase):

    def test_rotation_both_pinned_keys_verify(self):
        new, _, new_public = self.new_key('verifier-2026')
        stranger, _, _ = self.new_key('stranger')
        trusted = results.TrustedKeys.load([self.public_path, new_public])
        for signer in (self.signer, new):
            token = signer.sign(results.RESULT, HOST, 30)
            self.assertEqual(HOST, trusted.verify(token,
                                                  results.RESULT)['sub'])
        self.refused(stranger.sign(results.RESULT, HOST, 30), NOT_PINNED,
                     trusted=trusted)
        # Once the old key is unpinned, its tokens are refused.
        rotated = results.TrustedKeys.load([new_public])
        self.refused(self.signer.sign(results.RESULT, HOST, 30), NOT_PINNED,
                     trusted=rotated)

    def test_a_reloaded_key_signs_under_the_same_key_id(self):
        loaded = results.SigningKey.load(self.private_path)
        self.assertEqual(self.signer.kid, loaded.kid)
        self.assertEqual(HOST, self.trusted.verify(
            loaded.sign(results.RESULT, HOST, 30), results.RESULT)['sub'])
        self.assertEqual(self.signer.public_pem(), loaded.public_pem())

    def test_the_new_key_is_0600_and_never_overwrites(self):
        self.assertEqual(0o600, os.stat(self.private_path).st_mode & 0o777)
        with open(self.private_path, 'rb') as handle:
            before = handle.read()
        error = self.assertRaises(exception.ConfigurationError,
                                  results.generate_signing_key,
                                  self.private_path)
        self.assertIn('cannot create the signing key %s: File exists'
                      % self.private_path, str(error))
        with open(self.private_path, 'rb') as handle:
            self.assertEqual(before, handle.read())

    def test_a_private_key_readable_by_others_is_refused(self):
        for mode in (0o640, 0o604, 0o644):
            os.chmod(self.private_path, mode)
            error = self.assertRaises(exception.ConfigurationError,
                                      results.SigningKey.load,
                                      self.private_path)
            self.assertEqual('the verifier signing key %s is readable by '
                             'others (mode %o): make it 0600'
                             % (self.private_path, mode), str(error))
        os.chmod(self.private_path, 0o400)
        results.SigningKey.load(self.private_path)

    def test_a_symlinked_private_key_is_refused(self):
        link = os.path.join(self.folder, 'link.pem')
        os.symlink(self.private_path, link)
        error = self.assertRaises(exception.ConfigurationError,
                                  results.SigningKey.load, link)
        self.assertIn('cannot read the verifier signing key %s' % link,
                      str(error))

    def write(self, name, data, mode=0o600):
        path = os.path.join(self.folder, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        return path

    def test_keys_that_are_not_p256_are_refused(self):
        p384 = ec.generate_private_key(ec.SECP384R1())
        rsa_key = rsa.generate_private_key(public_exponent=65537,
                                           key_size=2048)
        for number, key in enumerate((p384, rsa_key)):
            private = self.write('private-%d.pem' % number, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            public = self.write('public-%d.pem' % number,
                                key.public_key().public_bytes(
                                    serialization.Encoding.PEM,
                                    serialization.PublicFormat
                                    .SubjectPublicKeyInfo), 0o644)
            error = self.assertRaises(exception.ConfigurationError,
                                      results.SigningKey.load, private)
            self.assertEqual('the verifier signing key %s is not an EC '
                             'P-256 key (ES256 needs one)' % private,
                             str(error))
            error = self.assertRaises(exception.ConfigurationError,
                                      results.TrustedKeys.load,
                                      [self.public_path, public])
            self.assertEqual('the verifier public key %s is not an EC '
                             'P-256 key (ES256 needs one)' % public,
                             str(error))

    def test_files_that_are_not_keys(self):
        garbage = self.write('garbage.pem', b'-----BEGIN nothing-----\n')
        error = self.assertRaises(exception.ConfigurationError,
                                  results.TrustedKeys.load, [garbage])
        self.assertIn('the verifier public key %s is not a PEM public key'
                      % garbage, str(error))
        error = self.assertRaises(exception.ConfigurationError,
                                  results.SigningKey.load, garbage)
        self.assertIn('the verifier signing key %s is not an unencrypted PEM '
                      'private key' % garbage, str(error))
        # The private key is no public key to pin.
        error = self.assertRaises(exception.ConfigurationError,
                                  results.TrustedKeys.load,
                                  [self.private_path])
        self.assertIn('is not a PEM public key', str(error))

    def test_oversized_and_missing_key_files(self):
        big = self.write('big.pem', b'x' * (es256_keys.MAX_KEY_FILE + 1))
        error = self.assertRaises(exception.ConfigurationError,
                                  results.TrustedKeys.load, [big])
        self.assertEqual('the verifier public key %s is larger than 16384 '
                         'bytes' % big, str(error))
        missing = os.path.join(self.folder, 'missing.pem')
        error = self.assertRaises(exception.ConfigurationError,
                                  results.TrustedKeys.load, [missing])
        self.assertEqual('cannot read the verifier public key %s: No such '
                         'file or directory' % missing, str(error))
        error = self.assertRaises(exception.ConfigurationError,
                                  results.TrustedKeys.load, [self.folder])
        self.assertIn('the verifier public key %s is not a file'
                      % self.folder, str(error))

    def test_no_pinned_keys_is_a_configuration_error(self):
        for paths in ([], None):
            error = self.assertRaises(exception.ConfigurationError,
                                      results.TrustedKeys.load, paths)
            self.assertIn('[korora] verifier_public_keys is empty',
                          str(error))


class TestVerdictClaims(ResultsTestCase):

    def verdict(self, trusted, evidence_valid, reasons=()):
        return verdict_module.Verdict(
            trusted, evidence_valid,
            tuple(verdict_module.Reason('code', reason)
                  for reason in reasons), host=HOST, policy='p-1')

    def test_a_trusted_host_is_affirming(self):
        token = self.signer.sign(results.RESULT, HOST, 30,
                                 results.verdict_claims(
                                     self.verdict(True, True), NONCE))
        claims = self.trusted.verify(token, results.RESULT, subject=HOST,
                                     nonce=NONCE)
        self.assertEqual((True, []), results.host_status(claims, HOST))
        submod = claims['submods'][HOST]
        self.assertEqual('p-1', submod['ear.appraisal-policy-id'])
        self.assertEqual(2, submod['ear.trustworthiness-vector'][
            'executables'])

    def test_an_untrusted_host_is_contraindicated_with_its_reasons(self):
        for evidence_valid in (True, False):
            claims = results.verdict_claims(self.verdict(
                False, evidence_valid, ['PCR 10 is not allowed']))
            self.assertNotIn('eat_nonce', claims)
            self.assertEqual(
                results.CONTRAINDICATED,
                claims['submods'][HOST]['ear.status'])
            affirmed, reasons = results.host_status(claims, HOST)
            self.assertFalse(affirmed)
            self.assertEqual(1, len(reasons))
            self.assertIn('PCR 10 is not allowed', reasons[0])

    def test_a_result_about_another_host_says_nothing_of_this_one(self):
        claims = results.verdict_claims(self.verdict(True, True))
        self.assertEqual(
            (False, ['the verifier\'s result says nothing of compute-2']),
            results.host_status(claims, OTHER))
        self.assertEqual(
            (False, ['the verifier\'s result says nothing of compute-1']),
            results.host_status({'submods': {HOST: 'garbage'}}, HOST))
