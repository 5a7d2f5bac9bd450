"""The slow-TPM proxy (korora_nova.demo.slow_tpm) in front of a real
swtpm: what it forwards, counts and charges. The delays are read from
its log (what it charged), never timed."""

import socket
import struct

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.types import TPM2B_PUBLIC

from korora_nova.attestation import appraisal
from korora_nova.attestation import policy
from korora_nova.demo import services
from korora_nova.demo import slow_tpm
from korora_nova.tpm import attestation_key
from korora_nova.tpm import certify
from korora_nova.tpm import connection as tpm_connection
from korora_nova.tpm import quote
from tests import base

SCALE = 0.01
SELECTION = [('sha256', 0), ('sha256', 10)]


class TestSlowTPM(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tpm = self.useFixture(services.SoftwareTPMFixture())
        self.tpm.connection.close()
        self.slow = self.useFixture(services.SlowTPMFixture(
            self.tpm, SCALE)).slow
        self.connection = tpm_connection.TPMConnection(self.slow.tcti)
        self.addCleanup(self.connection.close)
        self.ak = attestation_key.AttestationKey(
            self.connection, 'ecdsa-p256-sha256', services.AK_HANDLE)

    def test_a_quote_through_it_verifies_and_is_counted_once(self):
        key = appraisal.load_public_key(self.ak.public)
        mark = self.slow.mark()
        made = quote.quote(self.connection, self.ak, SELECTION, b'nonce')
        self.assertEqual({'Quote': 1, 'PCR_Read': 1}, self.slow.since(mark))
        verdict = appraisal.appraise_quote(
            made, key, b'nonce', policy.from_values('p', 1, made.pcr_values))
        self.assertTrue(verdict.trusted, verdict.summary())
        charged = [c for c in self.slow.commands()[mark:]
                   if c.rc != slow_tpm.RC_RETRY]
        self.assertEqual([('Quote', 0.2 * SCALE), ('PCR_Read', 0.005 * SCALE)],
                         [(c.name, round(c.delay, 6)) for c in charged])

    def test_key_generations_are_counted_and_rsa_costs_more(self):
        _ = self.ak.public
        mark = self.slow.mark()
        certify.create_certified_storage_key(self.connection, self.ak,
                                             b'k' * 32)
        with self.connection.esapi() as ectx:
            handle, _, _, _, _ = ectx.create_primary(
                None, TPM2B_PUBLIC.parse('rsa2048'), ESYS_TR.NULL)
            ectx.flush_context(handle)
        counts = self.slow.since(mark)
        self.assertEqual(2, slow_tpm.key_generations(counts), counts)
        primaries = [round(c.delay, 6) for c in self.slow.commands()[mark:]
                     if c.name == 'CreatePrimary']
        self.assertEqual([0.15 * SCALE, 1.0 * SCALE], primaries)

    def test_an_oversized_command_closes_only_its_connection(self):
        bad = socket.create_connection(('127.0.0.1', self.slow.port), 10)
        self.addCleanup(bad.close)
        bad.sendall(struct.pack('>HII', 0x8001, 100000, 0x17B))
        bad.settimeout(10)
        self.assertEqual(b'', bad.recv(16))
        # The proxy still serves others.
        self.assertEqual(2, len(quote.read_pcrs(self.connection,
                                                SELECTION)['sha256']))
