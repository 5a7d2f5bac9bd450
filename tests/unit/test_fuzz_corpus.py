"""The fuzz corpus and its regressions, replayed without atheris.

Every file under fuzz/corpus/<target>/ and fuzz/regressions/<target>/
goes through its target's fuzz_one_input as plain Python: a target
lets only the project's errors (with one-line messages) through, so any
other exception is a parser leak that came back.
"""

import logging
import os
import traceback

import fixtures
import testtools

from fuzz import common
from fuzz import targets
from korora_nova import exception

# Every entry point the fuzzers cover (doc/source/contributor/fuzzing.rst).
EXPECTED_TARGETS = {
    'appraise_certification', 'appraise_quote', 'attestation', 'bus_fields',
    'ca_bundle', 'domain_xml', 'ek_certificate', 'enrollment', 'envelope',
    'hook_socket', 'key_files', 'manifest', 'pcr_files', 'pcr_json',
    'policy', 'public_area', 'request', 'results_token', 'signature',
    'signed_claims', 'signed_document', 'signed_policy', 'verifier_rpc'}


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

    def setUp(self):
        super().setUp()
        # The product logs each refusal it is fed.
        self.useFixture(fixtures.FakeLogger(level=logging.WARNING))

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


def regression(target, name):
    with open(os.path.join(common.REGRESSIONS, target, name), 'rb') as stream:
        return stream.read()


class TestFoundLeaks(testtools.TestCase):
    """What the leaks the fuzzers found now answer an operator."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger(level=logging.WARNING))

    def enroll(self, name):
        from fuzz import keys
        from korora_nova.attestation import enrollment
        from korora_nova.attestation import evidence

        certificate, ek_public, ak_public = common.parts(
            regression('enrollment', name), 3)
        endorsement = evidence.Endorsement('EK-RSA2048', certificate,
                                           ek_public)
        return self.assertRaises(
            exception.KororaError, enrollment.challenge, 'compute-1',
            endorsement, ak_public, keys.anchors(), True)

    def test_an_ek_tpm2_pytss_cannot_encrypt_to(self):
        error = self.enroll('ek-unsupported-symmetric-mode')
        self.assertIsInstance(error, exception.EndorsementError)
        self.assertIn('compute-1: no credential can be made for this EK: '
                      'unsupported symmetric mode', str(error))

    def test_an_ek_of_an_unknown_name_algorithm(self):
        error = self.enroll('ek-unsupported-name-algorithm')
        self.assertIsInstance(error, exception.EndorsementError)
        self.assertIn('no credential can be made for this EK: unsupported '
                      'digest algorithm', str(error))

    def test_an_ak_with_attribute_bits_tpm2_pytss_cannot_name(self):
        error = self.enroll('ak-unknown-attribute-bits')
        self.assertIsInstance(error, exception.EnrollmentError)
        self.assertRegex(str(error), r'^the AK is not a restricted, '
                         r'TPM-bound signing key '
                         r'\(attributes 0x[0-9a-f]{8}\)$')

    def test_a_receiving_key_whose_point_is_off_its_curve(self):
        from korora_nova.tpm import duplication

        error = self.assertRaises(
            exception.EvidenceError, duplication.wrap,
            regression('public_area', 'receiver-point-off-curve'),
            b'k' * 32)
        self.assertEqual('the receiving key cannot be used to seal a secret: '
                         'Invalid EC key. Point is not on the curve '
                         'specified.', str(error))

    def test_key_files_on_a_curve_cryptography_cannot_read(self):
        from korora_nova.attestation import policy
        from korora_nova.attestation import results

        for name, load in (
                ('public-key-on-an-unsupported-curve',
                 lambda path: results.TrustedKeys.load([path])),
                ('private-key-on-an-unsupported-curve',
                 policy.load_signing_key)):
            path = os.path.join(common.REGRESSIONS, 'key_files', name)
            error = self.assertRaises(exception.ConfigurationError, load,
                                      path)
            self.assertIn('%s is not an EC P-256 key (ES256 needs one): '
                          'Curve 1.3.132.0.6 is not supported' % path,
                          str(error))
