"""PCR reads, extends and quotes against a real TPM."""

import hashlib
import time

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy
from korora_nova import exception
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import quote

ALL_PCRS = [('sha256', i) for i in range(24)]


class TestQuote(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host = self.useFixture(services.SoftwareTPMFixture())
        self.ak = self.host.attestation_key()
        self.key = appraisal.load_public_key(self.ak.public)

    def test_extend_follows_the_tpm_rule(self):
        before = quote.read_pcrs(self.host.connection,
                                 [('sha256', 10)])['sha256'][10]
        measured = quote.extend_pcr(self.host.connection, 'sha256', 10,
                                    b'korora-vtpm-manager 1.0')
        after = quote.read_pcrs(self.host.connection,
                                [('sha256', 10)])['sha256'][10]
        self.assertEqual(hashlib.sha256(b'korora-vtpm-manager 1.0').digest(),
                         measured)
        self.assertEqual(hashlib.sha256(before + measured).digest(), after)

    def test_quote_of_all_24_pcrs_verifies(self):
        # More than the 8 digests one TPM2_PCR_Read returns.
        quote.extend_pcr(self.host.connection, 'sha256', 16, b'debug')
        made = quote.quote(self.host.connection, self.ak, ALL_PCRS, b'x' * 64)
        self.assertEqual(24, len(made.pcr_values['sha256']))
        reference = policy.from_values('all', 1, made.pcr_values)
        verdict = appraisal.appraise_quote(made, self.key, b'x' * 64,
                                           reference, host='compute-1')
        self.assertTrue(verdict.trusted, verdict.summary())
        self.assertEqual('compute-1: trusted under policy all v1',
                         verdict.summary())
        self.assertEqual(tuple(ALL_PCRS), verdict.attestation.pcr_selection)

    def test_quote_carries_the_tpm_clock(self):
        first = quote.quote(self.host.connection, self.ak, ALL_PCRS[:2],
                            b'1')
        clock1 = evidence.parse_attestation(first.message).clock_info
        # The clock counts milliseconds: two quotes in the same one carry
        # the same clock, which is not "backwards". Quote until it moved.
        for _ in range(200):
            time.sleep(0.002)
            second = quote.quote(self.host.connection, self.ak,
                                 ALL_PCRS[:2], b'2')
            clock2 = evidence.parse_attestation(second.message).clock_info
            if clock2.clock > clock1.clock:
                break
        self.assertEqual(clock1.reset_count, clock2.reset_count)
        self.assertLess(clock1.clock, clock2.clock)
        verdict = appraisal.appraise_quote(
            first, self.key, b'1', policy.from_values(
                'p', 1, first.pcr_values), previous_clock=clock2)
        self.assertFalse(verdict.trusted)
        self.assertIn('clock', verdict.codes())

    def test_bad_nonces_are_refused_before_the_tpm(self):
        for nonce in (b'', b'n' * 65, 'text'):
            error = self.assertRaises(
                exception.EvidenceError, quote.quote, self.host.connection,
                self.ak, ALL_PCRS[:1], nonce)
            self.assertIn('1 to 64 bytes', str(error))

    def test_extend_of_a_pcr_that_does_not_exist(self):
        error = self.assertRaises(exception.ConfigurationError,
                                  quote.extend_pcr, self.host.connection,
                                  'sha256', 24, b'x')
        self.assertIn('no such PCR', str(error))

    def test_selection_of_an_inactive_bank(self):
        # swtpm_setup activated only the sha256 bank.
        error = self.assertRaises(
            exception.TPMError, quote.read_pcrs, self.host.connection,
            pcr_values.parse_selection('sha1:0,1'))
        self.assertIn('is the bank active?', str(error))
