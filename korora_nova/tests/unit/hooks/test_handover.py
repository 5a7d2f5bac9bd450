"""Steps 2 and 3 of a live migration: the destination's certified key and
the vTPM secret sealed to it, opened by the destination's vTPM manager.

Real vTPM managers on their own swtpms answer over oslo.messaging's
in-process driver; the migration records live in a real SQLite database.
"""

import base64
import json
import os

import fixtures
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPMT_SIG_SCHEME

from korora_nova import exception
from korora_nova.hooks import handover
from korora_nova.migration import records
from korora_nova.tests import base
from korora_nova.tests import fixtures as korora_fixtures
from korora_nova.tpm import certify
from korora_nova.tpm import duplication
from korora_nova.vtpm_manager import local_channel
from korora_nova.vtpm_manager import rpcapi

SOURCE = 'compute-1'
DEST = 'compute-2'
OTHER = 'compute-3'
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'
OTHER_MIGRATION = '6a1d4e2f-8c3b-4d9e-b0f7-4c5e2d3f1a08'
NONCE = bytes.fromhex('5e' * 32)
SECRET = 'S3cr3t passphrase of the vTPM of instance 0b9d7a5e'

NOT_CERTIFIED = ('the secret is sealed to a key this vTPM manager did not '
                 'certify, used already or let expire')
CHANGED = ('the sealed vTPM secret was changed or is not for this '
           'migration')
MALFORMED = 'the sealed vTPM secret is malformed'


def envelope_fields(envelope):
    """The envelope's JSON document (values base64 text)."""
    return json.loads(base64.urlsafe_b64decode(
        envelope[len(handover.PREFIX):].encode('ascii')))


def rewritten(envelope, **changes):
    """The envelope with fields replaced (bytes are base64-encoded, str
    kept as they are) or, for a value of None, removed."""
    document = envelope_fields(envelope)
    for name, value in changes.items():
        if value is None:
            del document[name]
        elif isinstance(value, bytes):
            document[name] = base64.b64encode(value).decode('ascii')
        else:
            document[name] = value
    return packed(json.dumps(document).encode('ascii'))


def packed(document_bytes):
    return handover.PREFIX + base64.urlsafe_b64encode(
        document_bytes).decode('ascii')


def field(envelope, name):
    return base64.b64decode(envelope_fields(envelope)[name])


def flipped(data, position=-1):
    data = bytearray(data)
    data[position] ^= 0x01
    return bytes(data)


class ReplayingAPI:
    """What a vTPM manager's reply looks like when someone on the bus
    answers with a certification recorded earlier."""

    def __init__(self, recorded):
        self.recorded = recorded
        self.asked = []

    def certify_migration_key(self, host, nonce):
        self.asked.append((host, nonce))
        return self.recorded


class HandoverTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(korora_fixtures.InProcessBusFixture(
            self.config.conf))
        self.useFixture(korora_fixtures.VerifierDatabaseFixture())
        self.managers = {}
        self.channel_keys = {}
        self.key_paths = {}
        self.start_manager(DEST)
        self.api = rpcapi.VTPMManagerAPI()
        self.record = records.create(MIGRATION, INSTANCE, SOURCE, DEST)
        self.binding = handover.binding(self.record)

    def start_manager(self, host, tpm=None, state_path=None):
        """A vTPM manager for host, with a local channel key of its own
        (the manager creates it when it starts)."""
        if host not in self.key_paths:
            self.key_paths[host] = os.path.join(
                self.useFixture(fixtures.TempDir()).path, 'korora',
                'local-channel.key')
        self.flags(local_channel_key=self.key_paths[host])
        manager = self.useFixture(korora_fixtures.VTPMManagerFixture(
            host, tpm, state_path=state_path))
        self.managers[host] = manager
        self.channel_keys[host] = local_channel.load_key(
            self.key_paths[host])
        return manager

    def certified(self, host=DEST, nonce=NONCE):
        return handover.certify_destination_key(
            self.api, host, self.managers[host].manager.ak.public, nonce)

    def sealed(self, host=DEST, secret=SECRET):
        return handover.seal_secret(self.certified(host), secret,
                                    self.binding)

    def open(self, envelope, host=DEST, binding=None, channel_key=None):
        return handover.open_secret(
            self.api, host, channel_key or self.channel_keys[host],
            envelope, binding or self.binding)

    def refused(self, error_class, envelope, message, **kwargs):
        error = self.assertRaises(error_class, self.open, envelope,
                                  **kwargs)
        self.assertIn(message, str(error))
        return error


class TestDestinationKey(HandoverTestCase):

    def test_the_managers_key_is_certified_by_its_ak(self):
        key = self.certified()
        self.assertEqual(32, len(key.unique))
        duplication.check_receiver_key(key.public)
        self.assertNotEqual(key.public, self.certified().public)

    def test_checked_against_another_tpms_ak_it_is_refused(self):
        stranger = self.useFixture(korora_fixtures.SoftwareTPMFixture())
        error = self.assertRaises(
            handover.HandoverError, handover.certify_destination_key,
            self.api, DEST, stranger.attestation_key().public, NONCE)
        self.assertEqual('the destination\'s migration key is not certified '
                         'by its attestation key: untrusted: compute-2: '
                         'signature does not verify with the enrolled AK',
                         str(error))

    def test_a_certification_for_another_nonce_is_refused(self):
        recorded = self.api.certify_migration_key(DEST, b'an older nonce')
        replaying = ReplayingAPI(recorded)
        error = self.assertRaises(
            handover.HandoverError, handover.certify_destination_key,
            replaying, DEST, self.managers[DEST].manager.ak.public, NONCE)
        self.assertEqual([(DEST, NONCE)], replaying.asked)
        self.assertIn('not certified by its attestation key: untrusted: '
                      'compute-2: nonce mismatch: stale or replayed evidence '
                      '(expected %s, got %s)'
                      % (NONCE.hex(), b'an older nonce'.hex()), str(error))

    def test_a_certification_of_another_key_is_refused(self):
        first = self.api.certify_migration_key(DEST, NONCE)
        second = self.api.certify_migration_key(DEST, NONCE)
        swapped = certify.CertifiedKey(second.public, first.attestation,
                                       first.signature, second.unique)
        error = self.assertRaises(
            handover.HandoverError, handover.certify_destination_key,
            ReplayingAPI(swapped), DEST,
            self.managers[DEST].manager.ak.public, NONCE)
        self.assertIn('compute-2: the key presented is not the key the AK '
                      'certified', str(error))

    def test_a_certified_key_that_can_sign_only_is_refused(self):
        # A TPM whose AK certified itself: genuine, but no storage key.
        tpm = self.useFixture(korora_fixtures.SoftwareTPMFixture())
        ak = tpm.attestation_key()
        with tpm.connection.esapi() as ectx:
            handle = ak.handle(ectx)
            attested, signature = ectx.certify(
                handle, handle, NONCE, TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL))
        signing = certify.CertifiedKey(ak.public, bytes(attested),
                                       signature.marshal(), b'u' * 32)
        error = self.assertRaises(
            handover.HandoverError, handover.certify_destination_key,
            ReplayingAPI(signing), 'compute-9', ak.public, NONCE)
        self.assertIn('compute-9: the migration key is not a restricted '
                      'decryption key fixed to its TPM', str(error))

    def test_nonces_are_1_to_64_bytes(self):
        for nonce in (b'', b'n' * 65):
            error = self.assertRaises(
                exception.KororaError, self.certified, nonce=nonce)
            self.assertIn('a nonce is 1 to 64 bytes', str(error))

    def test_a_destination_without_a_manager(self):
        self.flags(migration_step_timeout=0.5)
        error = self.assertRaises(
            exception.TPMConnectionError, handover.certify_destination_key,
            self.api, 'compute-9', self.managers[DEST].manager.ak.public,
            NONCE)
        self.assertEqual('compute-9: the vTPM manager did not answer within '
                         '0.5 s', str(error))


class TestSealAndOpen(HandoverTestCase):

    def test_round_trip_through_the_destinations_manager(self):
        envelope = self.sealed()
        self.assertTrue(handover.is_sealed(envelope))
        self.assertTrue(envelope.startswith('korora-sealed-v1:'))
        document = json.dumps(envelope_fields(envelope))
        for clear in (SECRET, base64.b64encode(SECRET.encode()).decode()):
            self.assertNotIn(clear, envelope)
            self.assertNotIn(clear, document)
        self.assertEqual(SECRET, self.open(envelope))

    def test_text_secrets_up_to_1024_bytes(self):
        for secret in ('x', '\u00e4' * 512, 'p' * handover.MAX_SECRET):
            self.assertEqual(secret, self.open(self.sealed(secret=secret)))

    def test_secret_bounds(self):
        key = self.certified()
        for secret in ('', 'p' * 1025, '\u00e4' * 513):
            error = self.assertRaises(handover.HandoverError,
                                      handover.seal_secret, key, secret,
                                      self.binding)
            self.assertEqual('a vTPM secret is 1 to 1024 bytes', str(error))

    def test_hosts_with_the_longest_names(self):
        # The binding is a digest: 255-character names fit the manager's
        # bound like short ones.
        record = records.create(None, INSTANCE, 's' * 255, 'd' * 255)
        bound = handover.binding(record)
        self.assertEqual(32, len(bound))
        envelope = handover.seal_secret(self.certified(), SECRET, bound)
        self.assertEqual(SECRET, self.open(envelope, binding=bound))

    def test_the_key_opens_one_secret_only(self):
        key = self.certified()
        first = handover.seal_secret(key, SECRET, self.binding)
        second = handover.seal_secret(key, 'another secret', self.binding)
        self.assertEqual(SECRET, self.open(first))
        for envelope in (first, second):
            self.refused(exception.KororaError, envelope,
                         'compute-2: ' + NOT_CERTIFIED)

    def test_another_migrations_binding_does_not_open_it(self):
        other = records.create(OTHER_MIGRATION, INSTANCE, SOURCE, DEST)
        envelope = self.sealed()
        self.refused(handover.HandoverError, envelope, CHANGED,
                     binding=handover.binding(other))
        # The failed attempt used the key up: the secret is gone for good.
        self.refused(exception.KororaError, envelope, NOT_CERTIFIED)

    def test_another_hosts_channel_key_does_not_open_the_reply(self):
        self.start_manager(OTHER)
        self.assertNotEqual(self.channel_keys[DEST],
                            self.channel_keys[OTHER])
        envelope = self.sealed(host=OTHER)
        error = self.refused(exception.EvidenceError, envelope,
                             'the sealed reply does not open with this '
                             'host\'s local channel key for this migration',
                             host=OTHER, channel_key=self.channel_keys[DEST])
        self.assertNotIsInstance(error, handover.HandoverError)

    def test_a_secret_for_another_managers_key_does_not_open_here(self):
        self.start_manager(OTHER)
        envelope = self.sealed(host=OTHER)
        self.refused(exception.KororaError, envelope,
                     'compute-2: ' + NOT_CERTIFIED)
        # Even under a unique this manager did certify, its TPM refuses.
        own = self.certified()
        error = self.refused(exception.TPMError,
                             rewritten(envelope, unique=own.unique),
                             'integrity check failed')
        self.assertIn('refused a command', str(error))
        self.assertEqual(SECRET, self.open(envelope, host=OTHER))

    def test_a_restarted_manager_has_forgotten_its_keys(self):
        envelope = self.sealed()
        manager = self.managers[DEST]
        manager.stop()
        self.start_manager(DEST, manager.tpm_fixture, manager.state_path)
        self.refused(exception.KororaError, envelope,
                     'compute-2: ' + NOT_CERTIFIED)
        self.assertEqual(SECRET, self.open(self.sealed()))


class TestEnvelope(HandoverTestCase):

    def setUp(self):
        super().setUp()
        self.envelope = self.sealed()

    def test_values_not_sealed_by_korora(self):
        for value in (SECRET, '', None, self.envelope.encode('ascii'),
                      self.envelope.upper(), ' ' + self.envelope):
            error = self.assertRaises(handover.HandoverError, self.open,
                                      value)
            self.assertEqual('the vTPM secret is not sealed by Korora',
                             str(error))
            self.assertFalse(handover.is_sealed(value))

    def test_deeply_nested_document(self):
        envelope = handover.PREFIX + base64.urlsafe_b64encode(
            b'[' * 3000).decode('ascii')
        error = self.assertRaises(handover.HandoverError, self.open,
                                  envelope)
        self.assertIn('the sealed vTPM secret is malformed', str(error))

    def test_oversized_envelope(self):
        for envelope in (handover.PREFIX + 'A' * handover.MAX_ENVELOPE,
                         self.envelope + 'A' * handover.MAX_ENVELOPE):
            self.refused(handover.HandoverError, envelope,
                         'the sealed vTPM secret is larger than 8192 bytes')

    def test_truncated_envelopes_never_reach_the_manager(self):
        body = len(self.envelope) - len(handover.PREFIX)
        for cut in (1, 2, 3, 4, 5, 8, 100, body - 4, body):
            self.refused(handover.HandoverError, self.envelope[:-cut],
                         MALFORMED)
        # Nothing was sent to the manager: the key is still unused.
        self.assertEqual(SECRET, self.open(self.envelope))

    def test_malformed_documents(self):
        for envelope in (handover.PREFIX + '\u00e9' * 8,
                         handover.PREFIX + '*not base64*',
                         packed(b'not json'),
                         packed(b'\xff\xfe'),
                         packed(b'[]'), packed(b'"text"'), packed(b'null'),
                         packed(b'{}'),
                         rewritten(self.envelope, seed=None),
                         rewritten(self.envelope, ciphertext=None),
                         rewritten(self.envelope, seed='*not base64*'),
                         rewritten(self.envelope, duplicate=5),
                         rewritten(self.envelope, public=['list']),
                         rewritten(self.envelope, nonce=b'n' * 11),
                         rewritten(self.envelope, nonce=b'n' * 13),
                         rewritten(self.envelope, unique=b'')):
            self.refused(handover.HandoverError, envelope, MALFORMED)
        self.assertEqual(SECRET, self.open(self.envelope))

    def test_a_missing_field_is_named(self):
        self.refused(handover.HandoverError,
                     rewritten(self.envelope, seed=None),
                     "the sealed vTPM secret is malformed: 'seed'")

    def test_a_changed_ciphertext_or_nonce(self):
        changes = (
            lambda e: {'ciphertext': flipped(field(e, 'ciphertext'))},
            lambda e: {'ciphertext': flipped(field(e, 'ciphertext'), 0)},
            lambda e: {'ciphertext': field(e, 'ciphertext')[:-1]},
            lambda e: {'nonce': flipped(field(e, 'nonce'))})
        for change in changes:
            envelope = self.sealed()
            self.refused(handover.HandoverError,
                         rewritten(envelope, **change(envelope)), CHANGED)

    def test_a_changed_duplicate_seed_or_public_is_refused_by_the_tpm(self):
        changes = (
            (lambda e: {'duplicate': flipped(field(e, 'duplicate'))},
             'integrity check failed'),
            (lambda e: {'public': flipped(field(e, 'public'))},
             'integrity check failed'),
            (lambda e: {'seed': flipped(field(e, 'seed'))},
             'point is not on the required curve'))
        for change, reason in changes:
            envelope = self.sealed()
            error = self.refused(exception.TPMError,
                                 rewritten(envelope, **change(envelope)),
                                 reason)
            self.assertIn('refused a command', str(error))

    def test_oversized_fields_are_refused_by_the_manager(self):
        for name, message in (
                ('duplicate', 'duplicate is missing or larger than 1024 '
                              'bytes'),
                ('seed', 'encrypted seed is missing or larger than 512 '
                         'bytes'),
                ('unique', 'key unique is missing or larger than 32 bytes')):
            self.refused(exception.KororaError,
                         rewritten(self.envelope, **{name: b'x' * 2000}),
                         message)
        self.assertEqual(SECRET, self.open(self.envelope))

    def test_a_changed_unique_names_no_key_of_the_manager(self):
        self.refused(exception.KororaError,
                     rewritten(self.envelope, unique=b'\x00' * 32),
                     'compute-2: ' + NOT_CERTIFIED)
