"""korora-manage evidence check, as an operator sees it.

The command is run as the console script, on a quote a real swtpm made
with korora's own attestation key. What is checked is what a person or a
script relies on: the JSON verdict on stdout, the exit status (0 valid,
and trusted when a policy is given; 1 not; 2 a usage error), and that a
usage error is one line on stderr, never a Python traceback.
"""

import base64
import hashlib
import json
import os
import random
import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives import serialization
import fixtures

from korora_nova.attestation import appraisal
from korora_nova.attestation import pcr_values
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import quote as tpm_quote

KORORA_MANAGE = os.path.join(os.path.dirname(sys.executable),
                             'korora-manage')
COMMAND_TIMEOUT = 60
NONCE = '0f1e2d3c4b5a69788796a5b4c3d2e1f0'
SELECTION = 'sha256:0,1,2,3,7,10'
VERDICT_FIELDS = {'host', 'trusted', 'evidence_valid', 'policy', 'reasons',
                  'quote', 'pcr_values'}
OVERSIZED = 100 * 1024


def _spki_of_unknown_algorithm():
    """A well-formed SubjectPublicKeyInfo (PEM) whose algorithm OID
    (1.2.3.4) no library knows: neither an RSA nor an EC key."""
    algorithm = b'\x30\x07\x06\x03\x2a\x03\x04\x05\x00'
    key = b'\x03\x21\x00' + b'\x01' * 32
    der = b'\x30' + bytes([len(algorithm + key)]) + algorithm + key
    return (b'-----BEGIN PUBLIC KEY-----\n' + base64.encodebytes(der)
            + b'-----END PUBLIC KEY-----\n')


class TestEvidenceCheckCommand(base.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._class_fixtures = fixtures.Fixture()
        cls._class_fixtures.setUp()
        try:
            cls._make_evidence()
        except BaseException:
            cls._class_fixtures.cleanUp()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._class_fixtures.cleanUp()
        super().tearDownClass()

    @classmethod
    def _make_evidence(cls):
        swtpm = cls._class_fixtures.useFixture(
            services.SoftwareTPMFixture())
        cls.directory = cls._class_fixtures.useFixture(
            fixtures.TempDir()).path
        connection = swtpm.connection
        tpm_quote.extend_pcr(connection, 'sha256', 10, b'kernel 6.1')
        tpm_quote.extend_pcr(connection, 'sha256', 7, b'secure boot on')
        ak = swtpm.attestation_key()
        cls.selection = pcr_values.parse_selection(SELECTION)
        quote = tpm_quote.quote(connection, ak, cls.selection,
                                bytes.fromhex(NONCE))
        connection.close()
        cls.values = quote.pcr_values
        ak_pem = appraisal.load_public_key(ak.public).public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        cls.ak = cls._write('ak.pem', ak_pem)
        cls.message = cls._write('quote.msg', quote.message)
        cls.signature = cls._write('quote.sig', quote.signature)
        cls.pcr_values = cls._write('vals.bin', b''.join(
            cls.values[bank][index] for bank, index in cls.selection))

    @classmethod
    def _write(cls, name, data):
        path = os.path.join(cls.directory, name)
        with open(path, 'wb') as stream:
            stream.write(data)
        return path

    # Helpers.

    def write(self, name, data):
        folder = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(folder, name)
        with open(path, 'wb' if isinstance(data, bytes) else 'w') as stream:
            stream.write(data)
        return path

    def write_policy(self, document):
        return self.write('policy.json', json.dumps(document))

    def policy_of_values(self, name, version, changes=None):
        """A policy allowing the quoted values, but for changes: {index:
        [allowed hex values]}."""
        allowed = {str(index): [self.values[bank][index].hex()]
                   for bank, index in self.selection}
        allowed.update({str(k): v for k, v in (changes or {}).items()})
        return self.write_policy({'name': name, 'version': version,
                                  'pcrs': {'sha256': allowed}})

    def check(self, *extra, **options):
        """Run "korora-manage evidence check"; options override the genuine
        evidence (None leaves an option out)."""
        arguments = {'--ak-pub': self.ak, '--nonce': NONCE,
                     '--message': self.message,
                     '--signature': self.signature,
                     '--pcr-values': self.pcr_values}
        arguments.update({'--' + k.replace('_', '-'): v
                          for k, v in options.items()})
        argv = [KORORA_MANAGE, 'evidence', 'check']
        for option, value in arguments.items():
            if value is not None:
                argv += [option, value]
        return self.run_manage(argv + list(extra))

    def run_manage(self, argv):
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT, check=False)
        result.details = '$ %s\n-> exit %d\nstdout:\n%s\nstderr:\n%s' % (
            ' '.join(argv), result.returncode, result.stdout, result.stderr)
        self.assertNotIn('Traceback', result.stdout, result.details)
        self.assertNotIn('Traceback', result.stderr, result.details)
        return result

    def verdict(self, result, exit_code):
        self.assertEqual(exit_code, result.returncode, result.details)
        try:
            verdict = json.loads(result.stdout)
        except ValueError:
            self.fail('stdout is not one JSON verdict\n' + result.details)
        self.assertEqual(VERDICT_FIELDS, set(verdict), result.details)
        for reason in verdict['reasons']:
            self.assertEqual({'code', 'message'}, set(reason),
                             result.details)
            self.assertTrue(reason['code'], result.details)
            self.assertTrue(reason['message'], result.details)
        return verdict

    def assert_usage_error(self, result, *fragments):
        """Exit 2, nothing on stdout, one line on stderr naming the
        problem."""
        self.assertEqual(2, result.returncode, result.details)
        self.assertEqual('', result.stdout, result.details)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(1, len(lines),
                         'a usage error is one line on stderr\n'
                         + result.details)
        self.assertTrue(lines[0].startswith('korora-manage: '),
                        result.details)
        for fragment in fragments:
            self.assertIn(fragment, lines[0], result.details)

    def assert_argparse_error(self, result, *fragments):
        """argparse's own usage errors: its synopsis, then one error line
        naming the problem; exit 2, nothing on stdout."""
        self.assertEqual(2, result.returncode, result.details)
        self.assertEqual('', result.stdout, result.details)
        last = result.stderr.strip().splitlines()[-1]
        self.assertTrue(last.startswith('korora-manage'), result.details)
        self.assertIn('error: ', last, result.details)
        for fragment in fragments:
            self.assertIn(fragment, last, result.details)

    # The verdict.

    def test_valid_evidence_without_a_policy(self):
        verdict = self.verdict(self.check(), 0)
        self.assertIs(True, verdict['evidence_valid'])
        # Valid, but with no policy the values were not appraised.
        self.assertIs(False, verdict['trusted'])
        self.assertIsNone(verdict['policy'])
        self.assertIsNone(verdict['host'])
        self.assertEqual(['no-policy'],
                         [r['code'] for r in verdict['reasons']])
        quote = verdict['quote']
        self.assertEqual('quote', quote['type'])
        self.assertEqual(NONCE, quote['nonce'])
        self.assertEqual(['sha256:%d' % i for _, i in self.selection],
                         quote['pcr_selection'])
        self.assertEqual(hashlib.sha256(b''.join(
            self.values[b][i] for b, i in self.selection)).hexdigest(),
            quote['pcr_digest'])
        for field in ('clock', 'reset_count', 'restart_count'):
            self.assertIsInstance(quote[field], int)
        self.assertIs(True, quote['safe'])
        self.assertEqual(
            {'sha256': {str(i): self.values['sha256'][i].hex()
                        for _, i in self.selection}},
            verdict['pcr_values'])
        self.assertNotEqual('00' * 32, verdict['pcr_values']['sha256']['10'])

    def test_matching_policy_is_trusted(self):
        policy = self.policy_of_values('compute-node', 3)
        verdict = self.verdict(self.check(policy=policy), 0)
        self.assertIs(True, verdict['trusted'])
        self.assertIs(True, verdict['evidence_valid'])
        self.assertEqual([], verdict['reasons'])
        self.assertEqual('compute-node v3', verdict['policy'])

    def test_policy_that_disallows_pcr_10(self):
        policy = self.policy_of_values('compute-node', 4,
                                       {10: ['aa' * 32, 'bb' * 32]})
        verdict = self.verdict(self.check(policy=policy), 1)
        self.assertIs(False, verdict['trusted'])
        # The evidence itself is genuine: only the policy says no.
        self.assertIs(True, verdict['evidence_valid'])
        self.assertEqual('compute-node v4', verdict['policy'])
        self.assertEqual(1, len(verdict['reasons']), verdict['reasons'])
        reason = verdict['reasons'][0]
        self.assertEqual('pcr-policy', reason['code'])
        self.assertIn('PCR sha256:10', reason['message'])
        self.assertIn('compute-node v4', reason['message'])
        self.assertIn(self.values['sha256'][10].hex(), reason['message'])

    def test_policy_naming_a_pcr_the_quote_does_not_cover(self):
        policy = self.policy_of_values('compute-node', 5, {12: ['cc' * 32]})
        verdict = self.verdict(self.check(policy=policy), 1)
        self.assertIs(False, verdict['trusted'])
        self.assertIs(True, verdict['evidence_valid'])
        messages = ' '.join(r['message'] for r in verdict['reasons'])
        self.assertIn('PCR sha256:12', messages)
        self.assertIn('compute-node v5', messages)

    def test_invalid_evidence_under_a_matching_policy(self):
        policy = self.policy_of_values('compute-node', 3)
        verdict = self.verdict(
            self.check(policy=policy, nonce='ff' + NONCE[2:]), 1)
        self.assertIs(False, verdict['trusted'])
        self.assertIs(False, verdict['evidence_valid'])
        self.assertEqual('compute-node v3', verdict['policy'])
        self.assertIn('nonce', [r['code'] for r in verdict['reasons']])

    def test_wrong_nonce(self):
        verdict = self.verdict(self.check(nonce='ff' + NONCE[2:]), 1)
        self.assertIs(False, verdict['evidence_valid'])
        self.assertIs(False, verdict['trusted'])
        nonce_reasons = [r for r in verdict['reasons']
                         if r['code'] == 'nonce']
        self.assertEqual(1, len(nonce_reasons), verdict['reasons'])
        self.assertIn('ff' + NONCE[2:], nonce_reasons[0]['message'])

    def test_tampered_pcr_values(self):
        with open(self.pcr_values, 'rb') as stream:
            values = bytearray(stream.read())
        values[-1] ^= 0x01
        verdict = self.verdict(
            self.check(pcr_values=self.write('vals.bin', bytes(values))), 1)
        self.assertIs(False, verdict['evidence_valid'])
        self.assertIn('pcr-digest', [r['code'] for r in verdict['reasons']])
        # Values that are not the quoted ones are not reported as such.
        self.assertIsNone(verdict['pcr_values'])

    # Malformed evidence: a negative verdict, not a usage error.

    def _assert_malformed(self, result):
        verdict = self.verdict(result, 1)
        self.assertIs(False, verdict['evidence_valid'])
        self.assertIs(False, verdict['trusted'])
        self.assertIn('malformed', [r['code'] for r in verdict['reasons']])
        return verdict

    def test_random_bytes_as_message(self):
        garbage = self.write('random.msg', random.Random(1).randbytes(120))
        verdict = self._assert_malformed(self.check(message=garbage))
        self.assertIsNone(verdict['quote'])
        self.assertIsNone(verdict['pcr_values'])

    def test_random_bytes_as_message_with_a_pcr_file(self):
        garbage = self.write('random.msg', random.Random(2).randbytes(120))
        pcrs = self.write('random.pcrs', random.Random(3).randbytes(668))
        verdict = self._assert_malformed(
            self.check(message=garbage, pcr_values=None, pcrs=pcrs))
        self.assertIsNone(verdict['quote'])

    def test_empty_message(self):
        self._assert_malformed(self.check(message=self.write('e.msg', b'')))

    def test_message_larger_than_any_tpm_makes(self):
        # Below the command's 64 KiB file limit, above any TPMS_ATTEST.
        big = self.write('big.msg', b'\xff\x54\x43\x47' + b'\0' * 4000)
        self._assert_malformed(self.check(message=big))

    def test_random_bytes_as_signature(self):
        garbage = self.write('random.sig', random.Random(4).randbytes(72))
        verdict = self.verdict(self.check(signature=garbage), 1)
        self.assertIs(False, verdict['evidence_valid'])
        self.assertTrue({'malformed', 'signature', 'unsupported-algorithm'}
                        & {r['code'] for r in verdict['reasons']},
                        verdict['reasons'])

    # Usage errors: exit 2, one line on stderr.

    def test_missing_message_file(self):
        missing = os.path.join(self.directory, 'no-such.msg')
        self.assert_usage_error(self.check(message=missing),
                                missing, 'No such file or directory')

    def test_missing_ak_file(self):
        missing = os.path.join(self.directory, 'no-such.pem')
        self.assert_usage_error(self.check(ak_pub=missing), missing)

    def test_missing_signature_file(self):
        missing = os.path.join(self.directory, 'no-such.sig')
        self.assert_usage_error(self.check(signature=missing), missing)

    def test_missing_pcr_values_file(self):
        missing = os.path.join(self.directory, 'no-such.bin')
        self.assert_usage_error(self.check(pcr_values=missing), missing)

    def test_missing_pcr_file(self):
        missing = os.path.join(self.directory, 'no-such.pcrs')
        self.assert_usage_error(
            self.check(pcr_values=None, pcrs=missing), missing)

    def test_missing_policy_file(self):
        missing = os.path.join(self.directory, 'no-such.json')
        self.assert_usage_error(self.check(policy=missing), missing)

    def test_unreadable_message(self):
        # Tests may run as root, who reads any file: a folder is a path
        # nobody can read as a file.
        folder = self.useFixture(fixtures.TempDir()).path
        self.assert_usage_error(self.check(message=folder), folder)

    def test_unreadable_ak(self):
        folder = self.useFixture(fixtures.TempDir()).path
        self.assert_usage_error(self.check(ak_pub=folder), folder)

    def test_non_hex_nonce(self):
        self.assert_usage_error(self.check(nonce='not-hex'), '--nonce',
                                'not-hex')

    def test_odd_length_nonce(self):
        self.assert_usage_error(self.check(nonce=NONCE[:-1]), '--nonce')

    def test_both_pcr_values_and_pcrs(self):
        self.assert_usage_error(self.check(pcrs=self.pcr_values),
                                '--pcr-values', '--pcrs')

    def test_neither_pcr_values_nor_pcrs(self):
        self.assert_usage_error(self.check(pcr_values=None),
                                '--pcr-values', '--pcrs')

    def test_garbage_ak_file(self):
        garbage = self.write('garbage.pem', random.Random(5).randbytes(200))
        self.assert_usage_error(self.check(ak_pub=garbage), '--ak-pub',
                                garbage)

    def test_empty_ak_file(self):
        self.assert_usage_error(
            self.check(ak_pub=self.write('empty.pem', b'')), '--ak-pub')

    def test_ak_file_with_an_ed25519_key(self):
        key = ed25519.Ed25519PrivateKey.generate().public_key()
        pem = self.write('ed25519.pem', key.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))
        self.assert_usage_error(self.check(ak_pub=pem), '--ak-pub')

    def test_ak_file_with_a_key_of_an_unknown_algorithm(self):
        pem = self.write('unknown.pem', _spki_of_unknown_algorithm())
        self.assert_usage_error(self.check(ak_pub=pem), '--ak-pub')

    def test_oversized_message(self):
        big = self.write('big.msg', b'\0' * OVERSIZED)
        self.assert_usage_error(self.check(message=big), big, 'larger')

    def test_oversized_signature(self):
        big = self.write('big.sig', b'\0' * OVERSIZED)
        self.assert_usage_error(self.check(signature=big), big, 'larger')

    def test_oversized_pcr_values(self):
        big = self.write('big.bin', b'\0' * OVERSIZED)
        self.assert_usage_error(self.check(pcr_values=big), big, 'larger')

    def test_oversized_pcr_file(self):
        big = self.write('big.pcrs', b'\0' * OVERSIZED)
        self.assert_usage_error(self.check(pcr_values=None, pcrs=big), big,
                                'larger')

    def test_oversized_ak_file(self):
        big = self.write('big.pem', b'\0' * OVERSIZED)
        self.assert_usage_error(self.check(ak_pub=big), big, 'larger')

    def test_policy_that_is_not_json(self):
        policy = self.write('policy.json', '{"name": "compute-node", ')
        self.assert_usage_error(self.check(policy=policy), 'JSON')

    def test_policy_with_a_bad_digest(self):
        policy = self.write_policy({'name': 'compute-node', 'version': 1,
                                    'pcrs': {'sha256': {'10': ['abcd']}}})
        self.assert_usage_error(self.check(policy=policy), 'compute-node')

    def test_policy_that_is_a_list(self):
        self.assert_usage_error(self.check(policy=self.write_policy([])),
                                'policy')

    def test_no_arguments_at_all(self):
        self.assert_argparse_error(self.run_manage([KORORA_MANAGE]),
                                   'required')

    def test_check_without_options(self):
        self.assert_argparse_error(
            self.run_manage([KORORA_MANAGE, 'evidence', 'check']),
            '--ak-pub', '--nonce', '--message', '--signature')

    def test_unknown_option(self):
        self.assert_argparse_error(self.check('--bogus'), '--bogus')
