"""PCR selections and the PCR files tpm2-tools writes.

The files come from real tpm2_quote and tpm2_pcrread runs against a
software TPM; the broken ones are copies of them.
"""

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import verdict
from korora_nova import exception
from tests import base
from tests.unit.attestation import shared

NONCE = bytes.fromhex('6b6f726f72612d6e6f6e63652d303031')
SIX = 'sha256:0,1,2,3,7,10'
TWELVE = 'sha256:0,1,2,3,4,5,6,7,8,9,10,23'
ALL = 'sha256:' + ','.join(str(i) for i in range(24))

# Offsets in a tpm2-tools serialized PCR file.
LIST_COUNT_AT = 4 + 16 * 8
LISTS_AT = LIST_COUNT_AT + 4
LIST_SIZE = 4 + 8 * 66


tearDownModule = shared.stop_software_tpms


def bank_entry_at(n):
    return 4 + 8 * n


def digest_at(list_number, entry):
    return LISTS_AT + list_number * LIST_SIZE + 4 + entry * 66


def patched(data, offset, fmt, value):
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


class SelectionTest(base.TestCase):

    def test_parse_selection(self):
        self.assertEqual([('sha256', 0), ('sha256', 1), ('sha256', 7)],
                         pcr_values.parse_selection('sha256:7,0,1'))
        self.assertEqual([('sha256', 1), ('sha256', 7), ('sha1', 0),
                          ('sha1', 23)],
                         pcr_values.parse_selection(
                             [' SHA256 : 7, 1,7 ', 'sha1:23,0']))
        self.assertEqual([('sha384', 4), ('sha512', 5)],
                         pcr_values.parse_selection(['sha384:4',
                                                     'sha512:5']))

    def test_parse_bad_selection(self):
        cases = (
            ('sha256', 'expected BANK:INDEX,... with BANK one of sha1, '
                       'sha256, sha384, sha512'),
            ('sha256:', 'expected BANK:INDEX'),
            (':1', 'expected BANK:INDEX'),
            ('md5:1', 'expected BANK:INDEX'),
            ('sha256:a', 'indices must be numbers'),
            ('sha256:1,,2', 'indices must be numbers'),
            ('sha256:1-3', 'indices must be numbers'),
            ('sha256:24', 'indices go from 0 to 23'),
            ('sha256:-1', 'indices go from 0 to 23'),
        )
        for entry, words in cases:
            error = self.assertRaises(exception.ConfigurationError,
                                      pcr_values.parse_selection, [entry])
            self.assertIn('PCR selection %r' % entry, str(error))
            self.assertIn(words, str(error))

    def test_quoted_digest_of_the_values(self):
        selection = pcr_values.parse_selection('sha256:0,1')
        values = {'sha256': {0: b'\x01' * 32, 1: b'\x02' * 32}}
        self.assertEqual(
            hashlib.sha256(b'\x01' * 32 + b'\x02' * 32).digest(),
            pcr_values.quoted_digest(selection, values, 'sha256'))

    def test_back_to_back(self):
        selection = pcr_values.parse_selection(['sha256:0,10', 'sha1:7'])
        data = b'\x00' * 32 + b'\x0a' * 32 + b'\x07' * 20
        self.assertEqual({'sha256': {0: b'\x00' * 32, 10: b'\x0a' * 32},
                          'sha1': {7: b'\x07' * 20}},
                         pcr_values.from_back_to_back(data, selection))

    def test_back_to_back_of_the_wrong_size(self):
        selection = pcr_values.parse_selection(['sha256:0,10', 'sha1:7'])
        for size in (0, 1, 83, 85, 96, 168):
            error = self.assertRaises(exception.EvidenceError,
                                      pcr_values.from_back_to_back,
                                      bytes(size), selection)
            self.assertIn('PCR values file is %d bytes' % size, str(error))
            self.assertIn('selection of 3 PCRs needs exactly 84',
                          str(error))


class JSONTest(base.TestCase):
    """PCR values as a vTPM manager's reply carries them."""

    def test_round_trip(self):
        values = {'sha256': {0: bytes(32), 23: b'\xab' * 32},
                  'sha1': {7: b'\x01' * 20}}
        document = pcr_values.to_json(values)
        self.assertEqual({'sha256': {'0': '00' * 32, '23': 'ab' * 32},
                          'sha1': {'7': '01' * 20}}, document)
        self.assertEqual(values, pcr_values.from_json(document))

    def test_malformed(self):
        cases = (
            (None, 'PCR values are malformed'),
            ([], 'PCR values are malformed'),
            ({str(n): {} for n in range(pcr_values.MAX_BANKS + 1)},
             'PCR values are malformed'),
            ({'md5': {'0': '00' * 16}}, "unknown bank 'md5'"),
            ({'sha256': ['00' * 32]}, "unknown bank 'sha256' or too many"),
            ({'sha256': {str(i): '00' * 32 for i in range(25)}},
             'too many PCRs'),
            ({'sha256': {'x': '00' * 32}},
             'sha256:x must be a PCR index (0-23) with a 32-byte hex'),
            ({'sha256': {'0': 'zz' * 32}}, 'sha256:0 must be a PCR index'),
            ({'sha256': {'0': 42}}, 'sha256:0 must be a PCR index'),
            ({'sha256': {'24': '00' * 32}}, 'sha256:24 must be a PCR index'),
            ({'sha256': {'-1': '00' * 32}}, 'sha256:-1 must be a PCR index'),
            ({'sha256': {'07': '00' * 32}}, 'sha256:07 must be a PCR index'),
            ({'sha256': {'0': '00' * 20}},
             'sha256:0 must be a PCR index (0-23) with a 32-byte hex'),
        )
        for document, words in cases:
            error = self.assertRaises(exception.EvidenceError,
                                      pcr_values.from_json, document)
            self.assertIn(words, str(error))


class ToolsFilesTest(shared.SharedTPMTestCase):
    """Files written by tpm2-tools 5 against a software TPM."""

    @classmethod
    def setUpTPMs(cls):
        cls.folder = tempfile.mkdtemp(prefix='korora-tools-')
        tpm = cls.tpms[0]
        # swtpm serves one client at a time: let tpm2-tools have it. The
        # korora connection reopens when the next test uses it.
        tpm.connection.close()
        try:
            cls.tools(tpm, 'tpm2_createek', '-c', 'ek.ctx', '-G', 'ecc',
                      '-u', 'ek.pub')
            cls.tools(tpm, 'tpm2_createak', '-C', 'ek.ctx', '-c', 'ak.ctx',
                      '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u',
                      'ak.pub', '-f', 'pem', '-n', 'ak.name')
            for name, selection in (('six', SIX), ('twelve', TWELVE),
                                    ('all', ALL)):
                cls.tools(tpm, 'tpm2_quote', '-c', 'ak.ctx', '-l',
                          selection, '-q', NONCE.hex(), '-m',
                          name + '.msg', '-s', name + '.sig', '-o',
                          name + '.pcrs', '-g', 'sha256')
                cls.tools(tpm, 'tpm2_pcrread', selection, '-o',
                          name + '.bin')
        except BaseException:
            shutil.rmtree(cls.folder, True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, True)
        super().tearDownClass()

    @classmethod
    def tools(cls, tpm, *argv):
        env = dict(os.environ, TPM2TOOLS_TCTI=tpm.tpm.tcti)
        for command in (argv, ('tpm2_flushcontext', '-t')):
            result = subprocess.run(command, cwd=cls.folder, env=env,
                                    capture_output=True, timeout=60)
            if result.returncode:
                raise AssertionError('%s failed: %s'
                                     % (' '.join(command), result.stderr))

    def read(self, name):
        with open(os.path.join(self.folder, name), 'rb') as stream:
            return stream.read()

    def ak_key(self):
        return appraisal.load_public_key(self.read('ak.pub'))

    def check(self, name, values, policy=None):
        message, signature = self.read(name + '.msg'), self.read(
            name + '.sig')
        return appraisal.appraise_quote(
            evidence.QuoteEvidence(message, signature, values),
            self.ak_key(), NONCE, policy, host='tools-host')

    def assertValidQuote(self, name, entries):
        selection, values = pcr_values.from_tools_serialized(
            self.read(name + '.pcrs'))
        self.assertEqual(pcr_values.parse_selection(entries), selection)
        for bank, index in selection:
            self.assertEqual(32, len(values[bank][index]))
        result = self.check(name, values)
        self.assertTrue(result.evidence_valid, result.summary())
        self.assertEqual({verdict.NO_POLICY}, result.codes())
        policy = policy_module.from_values('tools', 1, values)
        result = self.check(name, values, policy)
        self.assertTrue(result.trusted, result.summary())
        self.assertEqual('tools-host: trusted under policy tools v1',
                         result.summary())
        return selection, values

    def test_six_pcrs(self):
        data = self.read('six.pcrs')
        self.assertEqual(LISTS_AT + LIST_SIZE, len(data))
        self.assertValidQuote('six', SIX)

    def test_more_than_eight_pcrs(self):
        self.assertEqual(LISTS_AT + 2 * LIST_SIZE,
                         len(self.read('twelve.pcrs')))
        self.assertValidQuote('twelve', TWELVE)

    def test_all_pcrs(self):
        self.assertEqual(LISTS_AT + 3 * LIST_SIZE, len(self.read('all.pcrs')))
        self.assertValidQuote('all', ALL)

    def test_back_to_back_file_of_tpm2_pcrread(self):
        for name in ('six', 'twelve', 'all'):
            _, serialized = pcr_values.from_tools_serialized(
                self.read(name + '.pcrs'))
            selection = evidence.parse_attestation(
                self.read(name + '.msg')).pcr_selection
            values = pcr_values.from_back_to_back(self.read(name + '.bin'),
                                                  list(selection))
            self.assertEqual(serialized, values)
            self.assertTrue(self.check(name, values).evidence_valid)

    def test_value_changed_in_the_file(self):
        data = self.read('twelve.pcrs')
        # PCR 23 is the fourth digest of the second list.
        offset = digest_at(1, 3) + 2
        changed = data[:offset] + b'\x5a' + data[offset + 1:]
        _, values = pcr_values.from_tools_serialized(changed)
        self.assertEqual(b'\x5a', values['sha256'][23][:1])
        result = self.check('twelve', values)
        self.assertFalse(result.evidence_valid)
        self.assertIn(verdict.PCR_DIGEST, result.codes())
        self.assertIn('do not match the digest the TPM quoted',
                      result.summary())

    def assertBroken(self, data, *words):
        error = self.assertRaises(exception.EvidenceError,
                                  pcr_values.from_tools_serialized, data)
        for word in words:
            self.assertIn(word, str(error))

    def test_truncated(self):
        data = self.read('twelve.pcrs')
        for size in (0, 1, 100, LIST_COUNT_AT + 3):
            self.assertBroken(data[:size], 'PCR file is %d bytes: not a '
                              'tpm2-tools serialized PCR file' % size)
        for size in (len(data) - 1, len(data) - LIST_SIZE - 1, LISTS_AT):
            self.assertBroken(data[:size], 'PCR file is %d bytes but says '
                              'it holds 2 digest lists' % size)
        # One list less: the second half of the values is missing.
        self.assertBroken(patched(data[:LISTS_AT + LIST_SIZE],
                                  LIST_COUNT_AT, '<I', 1),
                          'selects 12 PCRs but holds 8 values')

    def test_oversized(self):
        data = self.read('six.pcrs')
        size = pcr_values.MAX_TOOLS_PCR_FILE + 1
        self.assertBroken(data.ljust(size, b'\0'),
                          'PCR file is %d bytes' % size, 'not a tpm2-tools')
        self.assertBroken(data + b'\0', 'says it holds 1 digest lists')

    def test_list_count_that_does_not_fit(self):
        data = self.read('six.pcrs')
        for count in (0, 2, 64, 0xFFFFFFFF):
            self.assertBroken(patched(data, LIST_COUNT_AT, '<I', count),
                              'says it holds %d digest lists' % count)

    def test_extra_digest_list(self):
        data = self.read('six.pcrs')
        extra = bytearray(LIST_SIZE)
        struct.pack_into('<IH', extra, 0, 1, 32)
        self.assertBroken(patched(data, LIST_COUNT_AT, '<I', 2) +
                          bytes(extra), 'selects 6 PCRs but holds 7 values')

    def test_unknown_bank(self):
        data = self.read('six.pcrs')
        self.assertBroken(patched(data, bank_entry_at(0), '<H', 0x0099),
                          'unknown PCR bank algorithm 0x0099')

    def test_too_many_banks(self):
        data = self.read('six.pcrs')
        self.assertBroken(patched(data, 0, '<I', 17),
                          'PCR file lists 17 banks; at most 16')

    def test_selection_too_long(self):
        data = self.read('six.pcrs')
        self.assertBroken(patched(data, bank_entry_at(0) + 2, '<B', 5),
                          'bank selection of 5 bytes')

    def test_selection_and_values_disagree(self):
        data = self.read('six.pcrs')
        # Drop PCR 10 from the selection mask (bit 10: second byte).
        offset = bank_entry_at(0) + 3 + 1
        self.assertBroken(patched(data, offset, '<B', data[offset] & ~4),
                          'selects 5 PCRs but holds 6 values')
        # Add PCR 23.
        offset = bank_entry_at(0) + 3 + 2
        self.assertBroken(patched(data, offset, '<B', data[offset] | 0x80),
                          'selects 7 PCRs but holds 6 values')

    def test_digest_list_too_long(self):
        data = self.read('six.pcrs')
        self.assertBroken(patched(data, LISTS_AT, '<I', 9),
                          'a digest list of 9 entries')

    def test_digest_too_long(self):
        data = self.read('six.pcrs')
        self.assertBroken(patched(data, digest_at(0, 2), '<H', 65),
                          'a digest of 65 bytes')

    def test_digest_of_the_wrong_size(self):
        data = self.read('six.pcrs')
        self.assertBroken(patched(data, digest_at(0, 3), '<H', 20),
                          'PCR sha256:3 is 20 bytes long, not 32')
