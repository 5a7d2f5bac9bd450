"""The fuzz corpus and its regressions, replayed without atheris.

Every file under fuzz/corpus/<target>/ and fuzz/regressions/<target>/
goes through its target's fuzz_one_input as plain Python: a target
lets only the project's errors (with one-line messages) through, so any
other exception is a parser leak that came back.
"""

import traceback

import testtools

from fuzz import common
from fuzz import targets
from korora_nova import exception

# Every entry point the fuzzers cover (doc/source/contributor/fuzzing.rst).
EXPECTED_TARGETS = {
    'appraise_certification', 'appraise_quote', 'attestation', 'bus_fields',
    'ca_bundle', 'domain_xml', 'ek_certificate', 'enrollment', 'envelope',
    'hook_socket', 'manifest', 'pcr_files', 'pcr_json', 'policy',
    'public_area', 'request', 'results_token', 'signature', 'signed_claims',
    'signed_document', 'signed_policy', 'verifier_rpc'}


def replay(name):
    """[(file, traceback)] of the corpus files target name crashes on."""
    target = common.target(name)
    failures = []
    for path in common.corpus_files(name):
        with open(path, 'rb') as stream:
            data = stream.read()
        try:
            target.fuzz_one_input(data)
        except Exception:
            failures.append((path, traceback.format_exc(limit=4)))
    return failures


class TestFuzzCorpus(testtools.TestCase):

    def test_every_entry_point_has_a_target(self):
        self.assertEqual(sorted(EXPECTED_TARGETS), targets.NAMES)

    def test_every_target_has_seeds_and_regressions(self):
        empty = [name for name in targets.NAMES
                 if not common.corpus_files(name, (common.CORPUS,)) or
                 not common.corpus_files(name, (common.REGRESSIONS,))]
        self.assertEqual([], empty)

    def test_a_leak_is_a_crash(self):
        # What the targets count as expected, and what not.
        def leak():
            raise ValueError('a parser leaked')

        def refuse():
            raise exception.EvidenceError('refused')

        def two_lines():
            raise exception.EvidenceError('refused\nwith a traceback')

        self.assertIsNone(common.answer(refuse))
        self.assertRaises(ValueError, common.answer, leak)
        self.assertRaises(common.BadAnswer, common.answer, two_lines)

    def test_parts_round_trip(self):
        chunks = [b'', b'\x00' * 300, b'quote', b'rest']
        self.assertEqual(chunks, common.parts(common.join(*chunks), 4))
        self.assertEqual([b'', b'', b''], common.parts(b'\xff', 3))


def _replay_test(name):
    def test(self):
        failures = replay(name)
        self.assertEqual([], failures, ''.join(
            '%s:\n%s' % failure for failure in failures))
    test.__name__ = 'test_replay_%s' % name
    test.__doc__ = 'fuzz/corpus and fuzz/regressions of %s' % name
    return test


for _name in sorted(EXPECTED_TARGETS):
    setattr(TestFuzzCorpus, 'test_replay_%s' % _name, _replay_test(_name))
