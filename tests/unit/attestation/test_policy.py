"""Reference policies: loading them, and what they say about PCR values."""

import json
import os

import fixtures

from korora_nova.attestation import policy
from korora_nova.attestation import verdict
from korora_nova import exception
from tests import base

A = 'a' * 64
B = 'b' * 64
C = 'c' * 64


def document(**changes):
    """A good policy document, with some fields changed or removed."""
    doc = {'name': 'compute-2026-11', 'version': 3,
           'pcrs': {'sha256': {'0': [A, B], '10': [C]},
                    'sha1': {'7': ['d' * 40]}}}
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return doc


class LoadTest(base.TestCase):

    def assertRefused(self, text, *words):
        error = self.assertRaises(exception.PolicyError, policy.loads, text)
        for word in words:
            self.assertIn(word, str(error))
        return error

    def test_good_policy(self):
        loaded = policy.loads(json.dumps(document()))
        self.assertEqual('compute-2026-11', loaded.name)
        self.assertEqual(3, loaded.version)
        self.assertEqual('compute-2026-11 v3', loaded.label)
        self.assertEqual({
            ('sha256', 0): frozenset([bytes.fromhex(A), bytes.fromhex(B)]),
            ('sha256', 10): frozenset([bytes.fromhex(C)]),
            ('sha1', 7): frozenset([bytes(20 * [0xdd])]),
        }, loaded.allowed)

    def test_good_policy_as_bytes(self):
        loaded = policy.loads(json.dumps(document()).encode())
        self.assertEqual('compute-2026-11 v3', loaded.label)

    def test_version_defaults_to_1(self):
        self.assertEqual('compute-2026-11 v1',
                         policy.loads(json.dumps(document(version=None)))
                         .label)

    def test_upper_case_hex_and_every_index(self):
        pcrs = {'sha512': {str(i): ['AB' * 64] for i in range(24)}}
        loaded = policy.from_json(document(pcrs=pcrs))
        self.assertEqual(24, len(loaded.allowed))
        self.assertEqual(frozenset([b'\xab' * 64]),
                         loaded.allowed[('sha512', 23)])

    def test_round_trip(self):
        loaded = policy.from_json(document())
        self.assertEqual(loaded, policy.from_json(loaded.to_json()))
        self.assertEqual(loaded, policy.loads(json.dumps(loaded.to_json())))

    def test_from_values(self):
        values = {'sha256': {0: bytes(32), 10: b'\x01' * 32}}
        made = policy.from_values('golden', 2, values)
        self.assertEqual('golden v2', made.label)
        self.assertEqual({('sha256', 0): frozenset([bytes(32)]),
                          ('sha256', 10): frozenset([b'\x01' * 32])},
                         made.allowed)
        self.assertEqual(made, policy.from_json(made.to_json()))

    def test_not_an_object(self):
        for text in ('[]', '"policy"', '3', 'null'):
            self.assertRefused(text, 'a policy is a JSON object')

    def test_missing_or_bad_name(self):
        # A name goes into every message about its policy: one line.
        for name in (None, '', '   ', 42, ['x'], 'n' * 256,
                     'compute\nforged log line', 'tab\there'):
            self.assertRefused(json.dumps(document(name=name)),
                               'a policy needs a "name"',
                               'at most 255 characters')

    def test_bad_version(self):
        for version in (0, -1, 1.5, '3', True, [], {}, 2 ** 31):
            self.assertRefused(json.dumps(document(version=version)),
                               'policy compute-2026-11',
                               '"version" must be a whole number from 1 '
                               'to 2147483647')

    def test_missing_or_empty_pcrs(self):
        for pcrs in (None, {}, [], 'sha256:0'):
            self.assertRefused(json.dumps(document(pcrs=pcrs)),
                               'policy compute-2026-11', '"pcrs" must map')

    def test_bank_without_pcrs(self):
        """A policy that names a bank but no PCR would allow anything.

        Fails until policy.from_json refuses it: {"sha256": {}} passes
        the check that "pcrs" is not empty, and the policy it makes has
        no allowed values at all, so every quote is trusted.
        """
        self.assertRefused(json.dumps(document(pcrs={'sha256': {}})),
                           'policy compute-2026-11', 'PCR')

    def test_unknown_bank(self):
        for bank in ('md5', 'SHA256', 'sha3_256', ''):
            self.assertRefused(
                json.dumps(document(pcrs={bank: {'0': [A]}})),
                'unknown PCR bank %r' % bank,
                'use one of sha1, sha256, sha384, sha512')

    def test_bank_that_is_not_an_object(self):
        self.assertRefused(json.dumps(document(pcrs={'sha256': [A]})),
                           "unknown PCR bank 'sha256'")

    def test_index_out_of_range(self):
        for index in ('24', '-1', '100', 'seven', '', '0x1', '1.0'):
            self.assertRefused(
                json.dumps(document(pcrs={'sha256': {index: [A]}})),
                'sha256 PCR %r is not an index from 0 to 23' % index)

    def test_bad_digest(self):
        cases = (
            ('a' * 63, 'is not a 32-byte hex digest'),
            ('a' * 62, 'is not a 32-byte hex digest'),
            ('a' * 66, 'is not a 32-byte hex digest'),
            ('g' * 64, 'is not a 32-byte hex digest'),
            ('d' * 40, 'is not a 32-byte hex digest'),
            ('', 'is not a 32-byte hex digest'),
            (32, 'is not a 32-byte hex digest'),
            (None, 'is not a 32-byte hex digest'),
        )
        for value, words in cases:
            self.assertRefused(
                json.dumps(document(pcrs={'sha256': {'0': [A, value]}})),
                'policy compute-2026-11: sha256 PCR 0: %r' % value, words)

    def test_values_not_a_list(self):
        for values in ([], A, {A: True}, None):
            self.assertRefused(
                json.dumps(document(pcrs={'sha256': {'3': values}})),
                'sha256 PCR 3 needs a list of 1 to %d allowed values'
                % policy.MAX_VALUES_PER_PCR)

    def test_too_many_values(self):
        values = ['%064x' % i for i in range(policy.MAX_VALUES_PER_PCR + 1)]
        self.assertRefused(
            json.dumps(document(pcrs={'sha256': {'0': values}})),
            'needs a list of 1 to 4096 allowed values')
        # As many as allowed is fine.
        loaded = policy.from_json(document(
            pcrs={'sha256': {'0': values[:-1]}}))
        self.assertEqual(policy.MAX_VALUES_PER_PCR,
                         len(loaded.allowed[('sha256', 0)]))

    def test_oversized(self):
        text = json.dumps(document(padding=' ' * policy.MAX_POLICY_FILE))
        self.assertRefused(text, 'policy is %d bytes' % len(text),
                           'at most %d' % policy.MAX_POLICY_FILE)
        self.assertRefused(text.encode(), 'at most')

    def test_invalid_json(self):
        for text in ('', '{', '{"name": "x",}', "{'name': 'x'}",
                     b'\xff\xfe\x00', '{"name": "x"} trailing'):
            self.assertRefused(text, 'policy is not valid JSON')

    def test_deeply_nested_json(self):
        text = '{"name": "x", "pcrs": ' + '[' * 100000 + ']' * 100000 + '}'
        self.assertRefused(text, 'policy is not valid JSON')
        nested = '{"a": ' * 50000 + '1' + '}' * 50000
        self.assertRefused(nested, 'policy is not valid JSON')

    def test_load_file(self):
        folder = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(folder, 'policy.json')
        with open(path, 'w') as stream:
            json.dump(document(), stream)
        self.assertEqual('compute-2026-11 v3', policy.load(path).label)

        error = self.assertRaises(exception.PolicyError, policy.load,
                                  os.path.join(folder, 'missing.json'))
        self.assertIn('cannot read policy file', str(error))
        self.assertIn('missing.json', str(error))

        with open(path, 'wb') as stream:
            stream.write(b' ' * (policy.MAX_POLICY_FILE + 10))
        error = self.assertRaises(exception.PolicyError, policy.load, path)
        self.assertIn('at most %d' % policy.MAX_POLICY_FILE, str(error))


class AppraiseTest(base.TestCase):
    """ReferencePolicy.appraise: the reasons PCR values break a policy."""

    def setUp(self):
        super().setUp()
        self.policy = policy.from_json(document())
        self.selection = [('sha1', 7), ('sha256', 0), ('sha256', 10)]
        self.values = {'sha256': {0: bytes.fromhex(B),
                                  10: bytes.fromhex(C)},
                       'sha1': {7: b'\xdd' * 20}}

    def test_values_allowed(self):
        self.assertEqual([], self.policy.appraise(self.selection,
                                                  self.values))

    def test_pcrs_the_policy_does_not_name_are_not_judged(self):
        selection = self.selection + [('sha256', 1)]
        values = dict(self.values, sha256=dict(self.values['sha256']))
        values['sha256'][1] = b'\x42' * 32
        self.assertEqual([], self.policy.appraise(selection, values))

    def test_pcr_not_covered(self):
        reasons = self.policy.appraise([('sha256', 0), ('sha256', 10)],
                                       self.values)
        self.assertEqual([verdict.PCR_POLICY], [r.code for r in reasons])
        self.assertEqual('PCR sha1:7 is required by policy compute-2026-11 '
                         'v3 but the quote does not cover it',
                         reasons[0].message)

    def test_value_not_allowed(self):
        values = dict(self.values, sha256={0: b'\x0f' * 32,
                                           10: bytes.fromhex(C)})
        reasons = self.policy.appraise(self.selection, values)
        self.assertEqual([verdict.PCR_POLICY], [r.code for r in reasons])
        self.assertEqual('PCR sha256:0 = %s: not allowed by policy '
                         'compute-2026-11 v3' % ('0f' * 32),
                         reasons[0].message)

    def test_every_broken_pcr_is_reported(self):
        values = {'sha256': {0: b'\x0f' * 32, 10: b'\x0e' * 32}}
        reasons = self.policy.appraise([('sha256', 0), ('sha256', 10)],
                                       values)
        messages = [r.message for r in reasons]
        self.assertEqual(3, len(messages), messages)
        self.assertIn('sha1:7 is required', messages[0])
        self.assertIn('sha256:0 = %s' % ('0f' * 32), messages[1])
        self.assertIn('sha256:10 = %s' % ('0e' * 32), messages[2])
        self.assertEqual({verdict.PCR_POLICY}, {r.code for r in reasons})

    def test_value_of_another_bank_does_not_count(self):
        """sha1:7's allowed value as sha256:7 is not sha1:7."""
        values = {'sha256': {0: bytes.fromhex(A), 10: bytes.fromhex(C),
                             7: b'\xdd' * 20}}
        reasons = self.policy.appraise(
            [('sha256', 0), ('sha256', 7), ('sha256', 10)], values)
        self.assertEqual(1, len(reasons))
        self.assertIn('sha1:7 is required by policy', reasons[0].message)

    def test_highest_pcr(self):
        loaded = policy.from_json(document(pcrs={'sha256': {'23': [A]}}))
        reasons = loaded.appraise([('sha256', 23)],
                                  {'sha256': {23: bytes(32)}})
        self.assertEqual(1, len(reasons))
        self.assertIn('PCR sha256:23 = %s' % ('00' * 32), reasons[0].message)
