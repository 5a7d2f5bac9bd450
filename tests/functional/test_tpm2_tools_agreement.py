"""korora-manage evidence check agrees with tpm2_checkquote.

Operators debug attestation with tpm2-tools, so korora must give the same
valid/invalid answer as tpm2_checkquote on every quote: on quotes made by
tpm2_quote, on mutated copies of them, and on quotes made by korora
itself. Everything here is real: a swtpm per test class, tpm2-tools and
the korora-manage console script run as subprocesses.

tpm2_checkquote (tpm2-tools 5.4) cannot judge two kinds of genuine
evidence at all; where one of these defects shows, the reference answer
comes from the tpm2-tools path that does work, as ToolsReference explains:

* tpm2-tools issue 3542: given back-to-back values with -l, it fails on
  selections of 8 PCRs or more ("Failed to hash PCR values related to
  quote!"). The same values in tpm2_quote -o's file format work.
* tpm2-tools issue 3283: it verifies no RSA-PSS signature ("Error
  validating signed message with public key provided"), and tpm2_quote
  needs --scheme rsapss to quote with an RSA-PSS AK at all. The TPM's own
  TPM2_VerifySignature (tpm2_verifysignature) checks the signature.
"""

import dataclasses
import json
import os
import struct
import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
import fixtures
import testscenarios
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPMT_SIGNATURE

from korora_nova.attestation import appraisal
from korora_nova.attestation import pcr_values
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import quote as tpm_quote

load_tests = testscenarios.load_tests_apply_scenarios

KORORA_MANAGE = os.path.join(os.path.dirname(sys.executable),
                             'korora-manage')
COMMAND_TIMEOUT = 60
NONCE = '6b6f726f72612d6e6f6e63652d3230323600c0ffee'
SHA256 = 0x000B
DIGEST_SIZE = 32
SELECTIONS = {
    '6pcrs': (0, 1, 2, 3, 7, 10),
    '16pcrs': tuple(range(16)),     # more than 8: two TPML_DIGESTs
}
# tpm2_createak and tpm2_quote options per AK kind, and the EK (-G) it
# is made under.
AK_KINDS = {
    'ecdsa': ('ecc', ['-G', 'ecc', '-s', 'ecdsa'], []),
    'rsassa': ('rsa', ['-G', 'rsa', '-s', 'rsassa'], []),
    'rsapss': ('rsa', ['-G', 'rsa', '-s', 'rsapss'],
               ['--scheme', 'rsapss']),
}
KORORA_AKS = {
    'ecdsa': ('ecdsa-p256-sha256', services.AK_HANDLE),
    'rsassa': ('rsassa-2048-sha256', services.AK_HANDLE + 1),
    'rsapss': ('rsapss-2048-sha256', services.AK_HANDLE + 2),
}
KORORA_FORMS = ('--pcr-values',)   # korora sends values back to back
P256_ORDER = int('ffffffff00000000ffffffffffffffff'
                 'bce6faada7179e84f3b9cac2fc632551', 16)

# tpm2_checkquote 5.4 defects (see the module docstring).
WIDE_SELECTION_DEFECT = 'Failed to hash PCR values related to quote'
RSAPSS_DEFECT = 'Error validating signed message with public key provided'


def selection_text(selection):
    return 'sha256:' + ','.join(str(i) for i in selection)


def tools_pcr_file(selection, digests):
    """A sha256 PCR file as tpm2_quote -o writes it (tpm2-tools' in-memory
    TPML_PCR_SELECTION, a count, then TPML_DIGESTs of 8 digests each)."""
    mask = sum(1 << i for i in selection)
    data = struct.pack('<I', 1) + struct.pack(
        '<HB4sx', SHA256, 3, mask.to_bytes(4, 'little'))
    data = data.ljust(4 + 16 * 8, b'\0')
    lists = [digests[n:n + 8] for n in range(0, len(digests), 8)]
    data += struct.pack('<I', len(lists))
    for chunk in lists:
        entry = struct.pack('<I', len(chunk)) + b''.join(
            struct.pack('<H64s', len(d), d) for d in chunk)
        data += entry.ljust(4 + 8 * (2 + 64), b'\0')
    return data


def tools_pcr_file_offset(position):
    """Offset of the position-th digest in a tools_pcr_file."""
    lists, index = divmod(position, 8)
    return 4 + 16 * 8 + 4 + lists * (4 + 8 * 66) + 4 + index * 66 + 2


def flip(data, offset, mask=0x01):
    data = bytearray(data)
    data[offset] ^= mask
    return bytes(data)


def attest_offsets(message):
    """Where the fields of a marshalled TPMS_ATTEST of a quote start."""
    name_size = int.from_bytes(message[6:8], 'big')
    nonce_size = int.from_bytes(message[8 + name_size:10 + name_size],
                                'big')
    nonce = 10 + name_size
    clock = nonce + nonce_size
    # clockInfo (17 bytes), firmwareVersion (8), then one bank's
    # TPML_PCR_SELECTION: count (4), hash (2), sizeofSelect (1), bitmap.
    return {'magic': 0, 'nonce': nonce, 'clock': clock,
            'pcr_select': clock + 32, 'pcr_digest': len(message) - 1}


@dataclasses.dataclass(frozen=True)
class Evidence:
    """A quote with its PCR values in both of tpm2-tools' forms."""

    message: bytes
    signature: bytes
    pcr_file: bytes         # as tpm2_quote -o writes it
    pcr_values: bytes       # back to back, as tpm2_pcrread -o writes it
    selection: tuple        # the sha256 PCRs the quote was asked for
    nonce: str
    ak_pem: bytes

    def swap_values(self, first, second):
        size = DIGEST_SIZE
        digests = [self.pcr_values[n * size:(n + 1) * size]
                   for n in range(len(self.selection))]
        digests[first], digests[second] = digests[second], digests[first]
        return dataclasses.replace(
            self, pcr_values=b''.join(digests),
            pcr_file=tools_pcr_file(self.selection, digests))


class Tpm2Tools:
    """tpm2-tools on one swtpm. swtpm has no resource manager, so every
    command that uses the TPM is followed by tpm2_flushcontext -t."""

    def __init__(self, tcti):
        self.env = dict(os.environ, TPM2TOOLS_TCTI=tcti)

    def run(self, argv, check=True, tpm=True):
        result = subprocess.run(argv, capture_output=True, text=True,
                                env=self.env, timeout=COMMAND_TIMEOUT,
                                check=False)
        if tpm:
            subprocess.run(['tpm2_flushcontext', '-t'],
                           capture_output=True, env=self.env,
                           timeout=COMMAND_TIMEOUT, check=True)
        if check and result.returncode != 0:
            raise AssertionError('%s failed (exit %d): %s'
                                 % (' '.join(argv), result.returncode,
                                    result.stderr.strip()))
        return result


def describe(argv, result):
    lines = ['$ ' + ' '.join(argv), '-> exit %d' % result.returncode]
    lines.extend('   ' + line for line in
                 (result.stderr.strip().splitlines()
                  + result.stdout.strip().splitlines())[-25:])
    return '\n'.join(lines)


class ToolsReference:
    """The valid/invalid answer of tpm2-tools on some evidence files.

    That is tpm2_checkquote's exit status, except where one of its known
    defects (module docstring) keeps it from judging the evidence:
    back-to-back values of 8 or more PCRs are then handed over in
    tpm2_quote -o's format, and for an RSA-PSS signature the TPM verifies
    the signature (tpm2_loadexternal, tpm2_verifysignature) while
    tpm2_checkquote judges everything else on the same message, re-signed
    with RSASSA by a helper key (the helper key only replaces the
    signature tpm2_checkquote cannot check).
    """

    def __init__(self, tools, directory):
        self.tools = tools
        self.directory = directory
        self.helper_key = rsa.generate_private_key(65537, 2048)
        self.helper_pem = os.path.join(directory, 'rsassa-helper.pem')
        with open(self.helper_pem, 'wb') as stream:
            stream.write(self.helper_key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo))

    def valid(self, files, nonce, selection, transcript):
        argv = ['tpm2_checkquote', '-u', files['ak'], '-m',
                files['message'], '-s', files['signature'], '-g', 'sha256',
                '-q', nonce]
        if 'values' in files:
            argv += ['-f', files['values'], '-l', selection_text(selection)]
        else:
            argv += ['-f', files['pcrs']]
        result = self.tools.run(argv, check=False, tpm=False)
        transcript.append(describe(argv, result))
        if result.returncode == 0:
            return True
        if ('values' in files and len(selection) >= 8
                and WIDE_SELECTION_DEFECT in result.stderr):
            transcript.append('(tpm2-tools issue 3542: the same values in '
                              'tpm2_quote -o format)')
            with open(files['values'], 'rb') as stream:
                data = stream.read()
            digests = [data[n * DIGEST_SIZE:(n + 1) * DIGEST_SIZE]
                       for n in range(len(selection))]
            converted = dict(files, pcrs=files['values'] + '.pcrs')
            del converted['values']
            with open(converted['pcrs'], 'wb') as stream:
                stream.write(tools_pcr_file(selection, digests))
            return self.valid(converted, nonce, selection, transcript)
        if (RSAPSS_DEFECT in result.stderr
                and self._scheme(files['signature']) == TPM2_ALG.RSAPSS):
            transcript.append('(tpm2-tools issue 3283: the TPM verifies the '
                              'RSA-PSS signature; tpm2_checkquote the rest)')
            if not self._tpm_verifies(files, transcript):
                return False
            return self.valid(self._resigned(files), nonce, selection,
                              transcript)
        return False

    @staticmethod
    def _scheme(path):
        with open(path, 'rb') as stream:
            data = stream.read()
        try:
            signature, _ = TPMT_SIGNATURE.unmarshal(data)
        except Exception:       # not a signature tpm2_checkquote read
            return None
        return signature.sigAlg

    def _tpm_verifies(self, files, transcript):
        with open(files['ak'], 'rb') as stream:
            key = serialization.load_pem_public_key(stream.read())
        context = files['signature'] + '.key.ctx'
        self.tools.run(['tpm2_loadexternal', '-C', 'n', '-G',
                        'rsa' if isinstance(key, rsa.RSAPublicKey)
                        else 'ecc', '-u', files['ak'], '-c', context])
        argv = ['tpm2_verifysignature', '-c', context, '-g', 'sha256',
                '-m', files['message'], '-s', files['signature']]
        result = self.tools.run(argv, check=False)
        transcript.append(describe(argv, result))
        return result.returncode == 0

    def _resigned(self, files):
        with open(files['message'], 'rb') as stream:
            message = stream.read()
        signature = TPMT_SIGNATURE(sigAlg=TPM2_ALG.RSASSA)
        signature.signature.rsassa.hash = TPM2_ALG.SHA256
        signature.signature.rsassa.sig = self.helper_key.sign(
            message, padding.PKCS1v15(), hashes.SHA256())
        resigned = dict(files, ak=self.helper_pem,
                        signature=files['signature'] + '.rsassa')
        with open(resigned['signature'], 'wb') as stream:
            stream.write(signature.marshal())
        return resigned


def run_korora(files, nonce):
    argv = [KORORA_MANAGE, 'evidence', 'check', '--ak-pub', files['ak'],
            '--nonce', nonce, '--message', files['message'],
            '--signature', files['signature']]
    if 'values' in files:
        argv += ['--pcr-values', files['values']]
    else:
        argv += ['--pcrs', files['pcrs']]
    result = subprocess.run(argv, capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT, check=False)
    return argv, result


class _AgreementMixin:
    """Shared by the classes: a swtpm per class, and the comparison."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._class_fixtures = fixtures.Fixture()
        cls._class_fixtures.setUp()
        try:
            cls.swtpm = cls._class_fixtures.useFixture(
                services.SoftwareTPMFixture())
            cls.directory = cls._class_fixtures.useFixture(
                fixtures.TempDir()).path
            cls.tools = Tpm2Tools(cls.swtpm.tpm.tcti)
            cls.reference = ToolsReference(cls.tools, cls.directory)
            cls.make_evidence()
        except BaseException:
            cls._class_fixtures.cleanUp()
            raise
        # tpm2-tools talk to the TPM from now on (ToolsReference).
        cls.swtpm.connection.close()

    @classmethod
    def tearDownClass(cls):
        cls._class_fixtures.cleanUp()
        super().tearDownClass()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.directory, name)

    def write_files(self, evidence, form):
        folder = self.useFixture(fixtures.TempDir()).path
        files = {}
        contents = {'ak': evidence.ak_pem, 'message': evidence.message,
                    'signature': evidence.signature}
        if form == '--pcrs':
            contents['pcrs'] = evidence.pcr_file
        else:
            contents['values'] = evidence.pcr_values
        names = {'ak': 'ak.pem', 'message': 'quote.msg',
                 'signature': 'quote.sig', 'pcrs': 'quote.pcrs',
                 'values': 'vals.bin'}
        for key, data in contents.items():
            files[key] = os.path.join(folder, names[key])
            with open(files[key], 'wb') as stream:
                stream.write(data)
        return files

    def assert_agreement(self, evidence, form, expected_valid):
        files = self.write_files(evidence, form)
        transcript = []
        tools_valid = self.reference.valid(files, evidence.nonce,
                                           evidence.selection, transcript)
        argv, result = run_korora(files, evidence.nonce)
        transcript.append(describe(argv, result))
        details = '%s\n%s' % (self.id(), '\n'.join(transcript))

        output = result.stdout + result.stderr
        self.assertNotIn('Traceback', output, details)
        self.assertIn(result.returncode, (0, 1),
                      'korora-manage must answer 0 (valid) or 1 (invalid) '
                      'on evidence it can read\n' + details)
        try:
            verdict = json.loads(result.stdout)
        except ValueError:
            self.fail('korora-manage printed no JSON verdict\n' + details)
        korora_valid = result.returncode == 0
        if korora_valid != tools_valid:
            self.fail('korora and tpm2-tools disagree: tpm2-tools says %s, '
                      'korora-manage says %s\n%s'
                      % ('valid' if tools_valid else 'invalid',
                         'valid' if korora_valid else 'invalid', details))
        self.assertIs(korora_valid, verdict['evidence_valid'], details)
        if not korora_valid:
            self.assertIs(False, verdict['trusted'], details)
            self.assertTrue(verdict['reasons'], details)
            for reason in verdict['reasons']:
                self.assertEqual({'code', 'message'}, set(reason), details)
                self.assertTrue(reason['code'] and reason['message'],
                                details)
        # Both agree; and on what the mutation makes of the evidence.
        self.assertEqual(expected_valid, tools_valid,
                         'both tools call the evidence %s, the test expects '
                         'it to be %s\n%s'
                         % ('valid' if tools_valid else 'invalid',
                            'valid' if expected_valid else 'invalid',
                            details))


# Mutations of a quote. Each takes the genuine Evidence and the store of
# the class's evidence, and returns what the verifier is handed.

def _message_flip(field, delta=0):
    def mutate(evidence, store):
        offset = attest_offsets(evidence.message)[field] + delta
        return dataclasses.replace(
            evidence, message=flip(evidence.message, offset))
    return mutate


def _negate_ecdsa_s(evidence, store):
    signature, _ = TPMT_SIGNATURE.unmarshal(evidence.signature)
    s = int.from_bytes(bytes(signature.signature.ecdsa.signatureS), 'big')
    signature.signature.ecdsa.signatureS = (P256_ORDER - s).to_bytes(
        32, 'big')
    return dataclasses.replace(evidence, signature=signature.marshal())


def _tamper_last_value(evidence, store):
    last = len(evidence.selection) - 1
    return dataclasses.replace(
        evidence,
        pcr_values=flip(evidence.pcr_values, last * DIGEST_SIZE + 5),
        pcr_file=flip(evidence.pcr_file, tools_pcr_file_offset(last) + 5))


def _pcrs_of(other):
    def mutate(evidence, store):
        source = store.pcrs_of(other, evidence)
        return dataclasses.replace(evidence, pcr_file=source.pcr_file,
                                   pcr_values=source.pcr_values)
    return mutate


def _replace(**changes):
    def mutate(evidence, store):
        return dataclasses.replace(evidence, **{
            name: change(evidence, store)
            for name, change in changes.items()})
    return mutate


@dataclasses.dataclass(frozen=True)
class Mutation:
    """A change to the evidence; valid says what it leaves of it."""

    name: str
    mutate: object
    valid: bool
    aks: tuple = tuple(AK_KINDS)
    selections: tuple = ('6pcrs',)
    forms: tuple = ('--pcrs', '--pcr-values')


ALL = tuple(SELECTIONS)
ECDSA = ('ecdsa',)
PCRS = ('--pcrs',)

# The ECDSA AK gets every mutation; the RSA AKs those where the kind of
# key matters (the signature, the key, the nonce, a changed message);
# how the PCR values are read does not depend on the AK. Changes
# to the signature, the nonce or the key do not touch how korora reads
# the PCR values: they are tried with --pcrs only. With --pcr-values,
# korora parses the message before anything else, so message mutations
# that make it unparsable are tried in both forms.
MUTATIONS = (
    Mutation('genuine', lambda evidence, store: evidence, True,
             selections=ALL),
    # The message (TPMS_ATTEST), field by field.
    Mutation('message magic flipped', _message_flip('magic', 3), False,
             aks=ECDSA),
    Mutation('message nonce flipped', _message_flip('nonce', 2), False,
             aks=ECDSA, forms=PCRS),
    Mutation('message clock flipped', _message_flip('clock', 7), False,
             aks=ECDSA, forms=PCRS),
    Mutation('message pcr selection flipped', _message_flip('pcr_select'),
             False, aks=ECDSA, selections=ALL),
    Mutation('message pcr digest flipped', _message_flip('pcr_digest'),
             False, selections=ALL),
    Mutation('message truncated',
             _replace(message=lambda e, s: e.message[:-1]), False,
             aks=ECDSA),
    Mutation('message with a byte appended',
             _replace(message=lambda e, s: e.message + b'\0'), False,
             aks=ECDSA),
    Mutation('message empty', _replace(message=lambda e, s: b''), False,
             aks=ECDSA),
    # The signature (TPMT_SIGNATURE).
    Mutation('signature scheme flipped',
             _replace(signature=lambda e, s: flip(e.signature, 1)), False,
             forms=PCRS),
    Mutation('signature hash flipped',
             _replace(signature=lambda e, s: flip(e.signature, 3)), False,
             forms=PCRS),
    Mutation('signature value flipped',
             _replace(signature=lambda e, s: flip(
                 e.signature, len(e.signature) // 2)), False,
             selections=ALL, forms=PCRS),
    Mutation('signature last byte flipped',
             _replace(signature=lambda e, s: flip(e.signature, -1)), False,
             aks=ECDSA, forms=PCRS),
    Mutation('signature truncated',
             _replace(signature=lambda e, s: e.signature[:-1]), False,
             aks=ECDSA, forms=PCRS),
    Mutation('signature of another quote',
             _replace(signature=lambda e, s: s.other_quote(e).signature),
             False, forms=PCRS),
    # s -> n - s is the same ECDSA signature to both OpenSSL and
    # cryptography: a mutated copy both must accept.
    Mutation('ecdsa signature with s negated', _negate_ecdsa_s, True,
             aks=ECDSA, forms=PCRS),
    # The nonce on the command line.
    Mutation('wrong nonce',
             _replace(nonce=lambda e, s: e.nonce[:-2] + '00'), False,
             forms=PCRS),
    Mutation('nonce truncated',
             _replace(nonce=lambda e, s: e.nonce[:20]), False, aks=ECDSA,
             forms=PCRS),
    Mutation('nonce in upper case',
             _replace(nonce=lambda e, s: e.nonce.upper()), True, aks=ECDSA,
             forms=PCRS),
    # The AK public key.
    Mutation('public key of another AK',
             _replace(ak_pem=lambda e, s: s.other_ak_pem(e)), False,
             forms=PCRS),
    # The PCR values.
    Mutation('pcr value tampered', _tamper_last_value, False, aks=ECDSA,
             selections=ALL),
    Mutation('pcr values swapped',
             lambda e, s: e.swap_values(0, len(e.selection) - 1), False,
             aks=ECDSA, selections=ALL),
    Mutation('pcr file truncated',
             _replace(pcr_file=lambda e, s: e.pcr_file[:-1],
                      pcr_values=lambda e, s: e.pcr_values[:-1]), False,
             aks=ECDSA),
    Mutation('pcr file of a later quote', _pcrs_of('later'), False,
             aks=ECDSA, selections=ALL),
    Mutation('pcr file of a quote of other pcrs', _pcrs_of('other'),
             False, aks=ECDSA, selections=ALL),
)


def _scenarios(aks, mutations, forms):
    scenarios = []
    for ak in aks:
        for selection in SELECTIONS:
            for mutation in mutations:
                if ak not in mutation.aks or (
                        selection not in mutation.selections):
                    continue
                for form in (f for f in forms if f in mutation.forms):
                    name = '%s,%s,%s,%s' % (ak, selection, form,
                                            mutation.name.replace(' ', '-'))
                    scenarios.append((name, {
                        'ak': ak, 'selection': selection, 'form': form,
                        'mutation': mutation}))
    return scenarios


class TestTpm2ToolsQuotes(_AgreementMixin, base.TestCase):
    """Quotes made by tpm2_quote, and mutated copies of them."""

    scenarios = _scenarios(AK_KINDS, MUTATIONS,
                           ('--pcrs', '--pcr-values'))

    @classmethod
    def make_evidence(cls):
        # swtpm serves one client at a time: tpm2-tools only from here on.
        cls.swtpm.connection.close()
        run = cls.tools.run
        # Every PCR quoted holds a value of its own.
        run(['tpm2_pcrextend'] + [
            '%d:sha256=%s' % (i, ('%02x' % (i + 1)) * DIGEST_SIZE)
            for i in SELECTIONS['16pcrs']])
        cls.evidence = {}
        for kind, (ek, ak_options, quote_options) in AK_KINDS.items():
            ek_context = cls.path('ek-%s.ctx' % ek)
            if not os.path.exists(ek_context):
                run(['tpm2_createek', '-c', ek_context, '-G', ek,
                     '-u', cls.path('ek-%s.pub' % ek)])
            context = cls.path('ak-%s.ctx' % kind)
            run(['tpm2_createak', '-C', ek_context, '-c', context]
                + ak_options + ['-g', 'sha256', '-u',
                                cls.path('ak-%s.pem' % kind), '-f', 'pem',
                                '-n', cls.path('ak-%s.name' % kind)])
            for selection in SELECTIONS:
                cls.evidence[kind, selection] = cls._quote(
                    kind, selection, quote_options, kind)
        # The same PCRs a little later: PCR 10 measured once more.
        run(['tpm2_pcrextend', '10:sha256=' + 'ab' * DIGEST_SIZE])
        cls.later = {
            selection: cls._quote('ecdsa', selection, [], 'later')
            for selection in SELECTIONS}
        cls._check_pcr_file_writer()

    @classmethod
    def _quote(cls, kind, selection, quote_options, prefix):
        stem = cls.path('%s-%s' % (prefix, selection))
        text = selection_text(SELECTIONS[selection])
        cls.tools.run(['tpm2_quote', '-c', cls.path('ak-%s.ctx' % kind),
                       '-l', text, '-q', NONCE, '-m', stem + '.msg',
                       '-s', stem + '.sig', '-o', stem + '.pcrs',
                       '-g', 'sha256'] + quote_options)
        cls.tools.run(['tpm2_pcrread', text, '-o', stem + '.vals'])
        contents = {}
        for suffix in ('msg', 'sig', 'pcrs', 'vals'):
            with open('%s.%s' % (stem, suffix), 'rb') as stream:
                contents[suffix] = stream.read()
        with open(cls.path('ak-%s.pem' % kind), 'rb') as stream:
            ak_pem = stream.read()
        return Evidence(contents['msg'], contents['sig'], contents['pcrs'],
                        contents['vals'], SELECTIONS[selection], NONCE,
                        ak_pem)

    @classmethod
    def _check_pcr_file_writer(cls):
        """tools_pcr_file must write exactly what tpm2_quote -o writes: the
        tests hand tpm2_checkquote files made with it."""
        for (kind, selection), evidence in cls.evidence.items():
            digests = [evidence.pcr_values[n * DIGEST_SIZE:
                                           (n + 1) * DIGEST_SIZE]
                       for n in range(len(evidence.selection))]
            if tools_pcr_file(evidence.selection, digests) != (
                    evidence.pcr_file):
                raise AssertionError(
                    'tools_pcr_file does not reproduce the tpm2_quote -o '
                    'file of the %s quote of %s' % (kind, selection))

    # The store the mutations draw on.

    @classmethod
    def _selection_of(cls, evidence):
        return next(name for name, pcrs in SELECTIONS.items()
                    if pcrs == evidence.selection)

    @classmethod
    def pcrs_of(cls, which, evidence):
        selection = cls._selection_of(evidence)
        if which == 'later':
            return cls.later[selection]
        other = next(name for name in SELECTIONS if name != selection)
        return cls.evidence['ecdsa', other]

    @classmethod
    def other_quote(cls, evidence):
        kind = next(k for (k, s), e in cls.evidence.items()
                    if e == evidence)
        other = next(name for name in SELECTIONS
                     if name != cls._selection_of(evidence))
        return cls.evidence[kind, other]

    @classmethod
    def other_ak_pem(cls, evidence):
        mine = {k for (k, s), e in cls.evidence.items()
                if e.ak_pem == evidence.ak_pem}
        other = next(k for k in AK_KINDS if k not in mine)
        return cls.evidence[other, '6pcrs'].ak_pem

    def test_korora_agrees_with_tpm2_checkquote(self):
        genuine = self.evidence[self.ak, self.selection]
        evidence = self.mutation.mutate(genuine, type(self))
        self.assert_agreement(evidence, self.form, self.mutation.valid)


class TestKororaQuotes(_AgreementMixin, base.TestCase):
    """Quotes made by korora itself, checked by tpm2_checkquote too.

    korora sends its PCR values back to back, so --pcr-values is the form
    tried here.
    """

    scenarios = _scenarios(KORORA_AKS, [
        dataclasses.replace(m, aks=tuple(KORORA_AKS), forms=KORORA_FORMS)
        for m in MUTATIONS if m.name in (
            'genuine', 'wrong nonce', 'signature value flipped',
            'pcr value tampered')], KORORA_FORMS)

    @classmethod
    def make_evidence(cls):
        connection = cls.swtpm.connection
        for i in SELECTIONS['16pcrs']:
            tpm_quote.extend_pcr(connection, 'sha256', i,
                                 b'korora measurement %d' % i)
        cls.evidence = {}
        for kind, (algorithm, handle) in KORORA_AKS.items():
            ak = cls.swtpm.attestation_key(algorithm, handle)
            ak_pem = appraisal.load_public_key(ak.public).public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo)
            for selection, pcrs in SELECTIONS.items():
                pairs = pcr_values.parse_selection(selection_text(pcrs))
                quote = tpm_quote.quote(connection, ak, pairs,
                                        bytes.fromhex(NONCE))
                values = [quote.pcr_values[bank][index]
                          for bank, index in pairs]
                cls.evidence[kind, selection] = Evidence(
                    quote.message, quote.signature,
                    tools_pcr_file(pcrs, values), b''.join(values), pcrs,
                    NONCE, ak_pem)

    def test_tpm2_checkquote_agrees_with_korora(self):
        genuine = self.evidence[self.ak, self.selection]
        evidence = self.mutation.mutate(genuine, type(self))
        self.assert_agreement(evidence, self.form, self.mutation.valid)
