"""Steps 2 and 3 of a live migration: the destination's certified key and
the vTPM secret sealed to it, opened by the destination's vTPM manager.

Real vTPM managers on their own swtpms: the verifier's calls (the key's
certification) over oslo.messaging's in-process driver, nova-compute's
(opening the secret) over the manager's own UNIX socket, each with an
authorization signed by the test's verifier key. The certification is
appraised as the verifier appraises it.
"""

import base64
import json

from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPMT_SIG_SCHEME

from korora_nova.attestation import appraisal
from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova import exception
from korora_nova.hooks import handover
from korora_nova.hooks import protocol
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import certify
from korora_nova.tpm import duplication
from korora_nova.vtpm_manager import local_client
from korora_nova.rpcapi import vtpm_manager as rpcapi

SOURCE = 'compute-1'
DEST = 'compute-2'
OTHER = 'compute-3'
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'
OTHER_MIGRATION = '6a1d4e2f-8c3b-4d9e-b0f7-4c5e2d3f1a08'
THIRD_MIGRATION = '7b2e5f30-9d4c-4eaf-81a8-5d6f3e4a2b19'
NONCE = bytes.fromhex('5e' * 32)
SECRET = 'S3cr3t passphrase of the vTPM of instance 0b9d7a5e'

NOT_CERTIFIED = ('the secret is sealed to a key this vTPM manager did not '
                 'certify for migration %s, used already or let expire')
OTHER_KEY = ('the secret is sealed to another key than the one the '
             'verifier certified for migration')
CHANGED = ('the sealed vTPM secret was changed or is not for this '
           'migration')
MALFORMED = 'the sealed vTPM secret is malformed'
REFUSED = 'the vTPM manager refused open_transfer: '


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


def record(uuid=MIGRATION, source=SOURCE, dest=DEST):
    return protocol.MigrationRecord(uuid, INSTANCE, source, dest,
                                    'KEY_CERTIFIED')


def migration_claims(migration_record):
    return {'uuid': migration_record.uuid,
            'instance_uuid': migration_record.instance_uuid,
            'source_host': migration_record.source_host,
            'dest_host': migration_record.dest_host,
            'source_nonce': '5e' * 32, 'dest_nonce': 'd1' * 32}


def appraised(key, ak_public, nonce=NONCE, host=DEST):
    """What the verifier concludes of a certified key: the AK's
    certification over the nonce for the CERTIFY purpose, of a storage
    key fixed to its TPM (verifier.migrations)."""
    verdict = appraisal.appraise_certification(
        key.attestation, key.signature, appraisal.load_public_key(ak_public),
        purpose.qualifying_data(purpose.CERTIFY, nonce), key.public,
        host=host)
    if verdict.evidence_valid:
        duplication.check_receiver_key(key.public, 'the migration key')
    return verdict


class HandoverTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(
            self.config.conf))
        self.signer = services.verifier_keys(self).signer
        self.managers = {}
        # The key the verifier recorded per migration (its key_unique).
        self.uniques = {}
        self.start_manager(DEST)
        self.api = rpcapi.VTPMManagerAPI(self.signer)
        self.record = record()
        self.binding = handover.binding(self.record)

    def start_manager(self, host, tpm=None, state_path=None):
        manager = self.useFixture(services.VTPMManagerFixture(
            host, tpm, state_path=state_path))
        self.managers[host] = manager
        return manager

    def authorization(self, action, host=DEST, uuid=MIGRATION, nonce=NONCE,
                      **claims):
        body = {'korora.action': action,
                'korora.role': results.ROLES[action],
                'korora.migration': migration_claims(record(uuid,
                                                            dest=host)),
                'eat_nonce': results.nonce_claim(nonce)}
        body.update(claims)
        return self.signer.sign(results.AUTHORIZATION, host, 60, body)

    def certify(self, host=DEST, uuid=MIGRATION, nonce=NONCE):
        """The key the manager of host certifies for migration uuid, as
        the verifier asks for it (unchecked)."""
        key = self.api.certify_migration_key(host, self.authorization(
            results.CERTIFY_KEY, host, uuid, nonce))
        self.uniques[uuid] = key.unique
        return key

    def certified(self, host=DEST, uuid=MIGRATION, nonce=NONCE):
        """A key the verifier found certified by host's AK."""
        key = self.certify(host, uuid, nonce)
        verdict = appraised(key, self.managers[host].manager.ak.public,
                            nonce, host)
        self.assertTrue(verdict.evidence_valid, verdict.summary())
        return key

    def sealed(self, host=DEST, secret=SECRET, uuid=MIGRATION):
        return handover.seal_secret(
            self.certified(host, uuid), secret,
            handover.binding(record(uuid, dest=host)))

    def open(self, envelope, host=DEST, binding=None, uuid=MIGRATION):
        """The secret, as the destination's compute opens it: the
        envelope parsed, its data key imported by the manager of host
        under the verifier's authorization of the transfer, naming the
        key the verifier certified for migration uuid."""
        fields = handover.parse(envelope)
        unique = self.uniques.get(uuid, b'\x00' * 32)
        token = self.authorization(results.TRANSFER, host, uuid, **{
            'korora.key_unique': base64.b64encode(unique).decode('ascii')})
        local = local_client.LocalManager(self.managers[host].hook_socket,
                                          30)
        data_key = local.open_transfer(token,
                                       handover.duplicate_fields(fields))
        return handover.open_with(
            data_key, fields,
            binding or handover.binding(record(uuid, dest=host)))

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
        self.assertNotEqual(key.public,
                            self.certified(uuid=OTHER_MIGRATION).public)

    def test_checked_against_another_tpms_ak_it_is_refused(self):
        stranger = self.useFixture(services.SoftwareTPMFixture())
        verdict = appraised(self.certify(),
                            stranger.attestation_key().public)
        self.assertFalse(verdict.evidence_valid)
        self.assertEqual('untrusted: compute-2: signature does not verify '
                         'with the enrolled AK', verdict.summary())

    def test_a_certification_for_another_nonce_is_refused(self):
        key = self.certify(nonce=b'an older nonce')
        verdict = appraised(key, self.managers[DEST].manager.ak.public)
        self.assertFalse(verdict.evidence_valid)
        self.assertIn('compute-2: nonce mismatch: stale or replayed '
                      'evidence (expected %s, got %s)'
                      % (purpose.qualifying_data(purpose.CERTIFY,
                                                 NONCE).hex(),
                         purpose.qualifying_data(
                             purpose.CERTIFY, b'an older nonce').hex()),
                      verdict.summary())

    def test_a_quote_over_the_nonce_certifies_no_key(self):
        # The verifier's attestation challenge with the same nonce: a
        # quote, for another purpose.
        quoted = self.api.attest(DEST, NONCE)
        key = self.certify()
        forged = certify.CertifiedKey(key.public, quoted.message,
                                      quoted.signature, key.unique)
        verdict = appraised(forged, self.managers[DEST].manager.ak.public)
        self.assertFalse(verdict.evidence_valid)
        self.assertIn('evidence is a quote, not a key certification',
                      verdict.summary())
        self.assertIn('nonce mismatch', verdict.summary())

    def test_a_certification_of_another_key_is_refused(self):
        first = self.certify()
        second = self.certify(uuid=OTHER_MIGRATION)
        swapped = certify.CertifiedKey(second.public, first.attestation,
                                       first.signature, second.unique)
        verdict = appraised(swapped, self.managers[DEST].manager.ak.public)
        self.assertIn('compute-2: the key presented is not the key the AK '
                      'certified', verdict.summary())

    def test_a_certified_key_that_can_sign_only_is_refused(self):
        # A TPM whose AK certified itself: genuine, but no storage key.
        tpm = self.useFixture(services.SoftwareTPMFixture())
        ak = tpm.attestation_key()
        with tpm.connection.esapi() as ectx:
            handle = ak.handle(ectx)
            attested, signature = ectx.certify(
                handle, handle,
                purpose.qualifying_data(purpose.CERTIFY, NONCE),
                TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL))
        signing = certify.CertifiedKey(ak.public, bytes(attested),
                                       signature.marshal(), b'u' * 32)
        error = self.assertRaises(exception.EvidenceError, appraised,
                                  signing, ak.public, NONCE, 'compute-9')
        self.assertIn('the migration key is not a restricted decryption key '
                      'fixed to its TPM', str(error))

    def test_nonces_are_1_to_64_bytes(self):
        for nonce, reason in ((b'', 'the token carries no nonce'),
                              (b'n' * 65, 'the challenge\'s nonce is 1 to '
                                          '64 bytes')):
            error = self.assertRaises(
                exception.KororaError, self.certify, nonce=nonce)
            self.assertIn('compute-2: certify-key refused: ' + reason,
                          str(error))
        # Refused, it certified nothing: the migration still gets a key.
        self.certified()

    def test_a_destination_without_a_manager(self):
        self.flags(migration_step_timeout=0.5)
        error = self.assertRaises(
            exception.TPMConnectionError, self.certify, host='compute-9')
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
        for number, secret in enumerate(('x', '\u00e4' * 512,
                                         'p' * handover.MAX_SECRET)):
            uuid = '%08d-7b2a-4c8d-a9e6-3b4f1d2c0e97' % number
            self.assertEqual(secret, self.open(
                self.sealed(secret=secret, uuid=uuid), uuid=uuid))

    def test_secret_bounds(self):
        key = self.certified()
        for secret in ('', 'p' * 1025, '\u00e4' * 513):
            error = self.assertRaises(exception.HandoverError,
                                      handover.seal_secret, key, secret,
                                      self.binding)
            self.assertEqual('a vTPM secret is 1 to 1024 bytes', str(error))

    def test_hosts_with_the_longest_names(self):
        # The binding is a digest: 255-character names fit like short
        # ones.
        bound = handover.binding(record(source='s' * 255, dest='d' * 255))
        self.assertEqual(32, len(bound))
        envelope = handover.seal_secret(self.certified(), SECRET, bound)
        self.assertEqual(SECRET, self.open(envelope, binding=bound))

    def test_the_key_opens_one_secret_only(self):
        key = self.certified()
        first = handover.seal_secret(key, SECRET, self.binding)
        second = handover.seal_secret(key, 'another secret', self.binding)
        self.assertEqual(SECRET, self.open(first))
        for envelope in (first, second):
            self.refused(exception.TPMError, envelope,
                         REFUSED + 'compute-2: ' + NOT_CERTIFIED % MIGRATION)

    def test_another_migrations_binding_does_not_open_it(self):
        envelope = self.sealed()
        self.refused(exception.HandoverError, envelope, CHANGED,
                     binding=handover.binding(record(OTHER_MIGRATION)))
        # The failed attempt used the key up: the secret is gone for good.
        self.refused(exception.TPMError, envelope,
                     NOT_CERTIFIED % MIGRATION)

    def test_a_secret_for_another_managers_key_does_not_open_here(self):
        self.start_manager(OTHER)
        envelope = self.sealed(host=OTHER, uuid=OTHER_MIGRATION)
        # The verifier certified another key for this migration here.
        self.certified()
        self.refused(exception.TPMError, envelope, OTHER_KEY)
        # Under the unique this manager did certify, its TPM refuses.
        own = self.certified(uuid=THIRD_MIGRATION)
        error = self.refused(exception.TPMError,
                             rewritten(envelope, unique=own.unique),
                             'integrity check failed', uuid=THIRD_MIGRATION)
        self.assertIn('refused a command', str(error))
        self.assertEqual(SECRET, self.open(envelope, host=OTHER,
                                           uuid=OTHER_MIGRATION))

    def test_a_restarted_manager_has_forgotten_its_keys(self):
        envelope = self.sealed()
        manager = self.managers[DEST]
        manager.stop()
        self.start_manager(DEST, manager.tpm_fixture, manager.state_path)
        self.refused(exception.TPMError, envelope,
                     'compute-2: ' + NOT_CERTIFIED % MIGRATION)
        self.assertEqual(SECRET, self.open(self.sealed(uuid=OTHER_MIGRATION),
                                           uuid=OTHER_MIGRATION))

    def test_a_transfer_of_another_migration_does_not_open_it(self):
        envelope = self.sealed()
        self.certified(uuid=OTHER_MIGRATION)
        self.refused(exception.TPMError, envelope, OTHER_KEY,
                     uuid=OTHER_MIGRATION)
        self.assertEqual(SECRET, self.open(envelope))


class TestEnvelope(HandoverTestCase):

    def setUp(self):
        super().setUp()
        self.envelope = self.sealed()

    def test_values_not_sealed_by_korora(self):
        for value in (SECRET, '', None, self.envelope.encode('ascii'),
                      self.envelope.upper(), ' ' + self.envelope):
            error = self.assertRaises(exception.HandoverError, self.open,
                                      value)
            self.assertEqual('the vTPM secret is not sealed by Korora',
                             str(error))
            self.assertFalse(handover.is_sealed(value))

    def test_deeply_nested_document(self):
        envelope = handover.PREFIX + base64.urlsafe_b64encode(
            b'[' * 3000).decode('ascii')
        error = self.assertRaises(exception.HandoverError, self.open,
                                  envelope)
        self.assertIn('the sealed vTPM secret is malformed', str(error))

    def test_oversized_envelope(self):
        for envelope in (handover.PREFIX + 'A' * handover.MAX_ENVELOPE,
                         self.envelope + 'A' * handover.MAX_ENVELOPE):
            self.refused(exception.HandoverError, envelope,
                         'the sealed vTPM secret is larger than 8192 bytes')

    def test_truncated_envelopes_never_reach_the_manager(self):
        body = len(self.envelope) - len(handover.PREFIX)
        for cut in (1, 2, 3, 4, 5, 8, 100, body - 4, body):
            self.refused(exception.HandoverError, self.envelope[:-cut],
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
            self.refused(exception.HandoverError, envelope, MALFORMED)
        self.assertEqual(SECRET, self.open(self.envelope))

    def test_a_missing_field_is_named(self):
        self.refused(exception.HandoverError,
                     rewritten(self.envelope, seed=None),
                     "the sealed vTPM secret is malformed: 'seed'")

    def test_a_changed_ciphertext_or_nonce(self):
        changes = (
            lambda e: {'ciphertext': flipped(field(e, 'ciphertext'))},
            lambda e: {'ciphertext': flipped(field(e, 'ciphertext'), 0)},
            lambda e: {'ciphertext': field(e, 'ciphertext')[:-1]},
            lambda e: {'nonce': flipped(field(e, 'nonce'))})
        for number, change in enumerate(changes):
            uuid = '%08d-7b2a-4c8d-a9e6-3b4f1d2c0e97' % number
            envelope = self.sealed(uuid=uuid)
            self.refused(exception.HandoverError,
                         rewritten(envelope, **change(envelope)), CHANGED,
                         uuid=uuid)

    def test_a_changed_duplicate_seed_or_public_is_refused_by_the_tpm(self):
        changes = (
            (lambda e: {'duplicate': flipped(field(e, 'duplicate'))},
             'integrity check failed'),
            (lambda e: {'public': flipped(field(e, 'public'))},
             'integrity check failed'),
            (lambda e: {'seed': flipped(field(e, 'seed'))},
             'point is not on the required curve'))
        for number, (change, reason) in enumerate(changes):
            uuid = '%08d-7b2a-4c8d-a9e6-3b4f1d2c0e97' % number
            envelope = self.sealed(uuid=uuid)
            error = self.refused(exception.TPMError,
                                 rewritten(envelope, **change(envelope)),
                                 reason, uuid=uuid)
            self.assertIn(REFUSED, str(error))
            self.assertIn('refused a command', str(error))

    def test_oversized_fields_are_refused_by_the_manager(self):
        for name, message in (
                ('duplicate', 'duplicate is missing or larger than 1024 '
                              'bytes'),
                ('seed', 'encrypted seed is missing or larger than 512 '
                         'bytes'),
                ('unique', 'key unique is missing or larger than 32 bytes')):
            self.refused(exception.TPMError,
                         rewritten(self.envelope, **{name: b'x' * 2000}),
                         REFUSED + message)
        self.assertEqual(SECRET, self.open(self.envelope))

    def test_a_changed_unique_is_not_the_key_the_verifier_certified(self):
        self.refused(exception.TPMError,
                     rewritten(self.envelope, unique=b'\x00' * 32),
                     REFUSED + 'compute-2: ' + OTHER_KEY)
        self.assertEqual(SECRET, self.open(self.envelope))
