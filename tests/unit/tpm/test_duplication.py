"""Handing a secret to a certified key by duplication, in real swtpms.

The sender wraps in software (tpm2-pytss, cryptography); the receiving
TPM imports and unseals. Only the TPM that certified the key opens the
duplicate: another TPM, or the same TPM after a reset, does not.
"""

import dataclasses

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_CAP
from tpm2_pytss.constants import TPM2_HC
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC

from korora_nova import exception
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import certify
from korora_nova.tpm import duplication

NONCE = b'nonce of migration 5f0c3d1e'
SECRET = b'data key of the vTPM secret, 32b'
NOT_A_STORAGE_KEY = ('the receiving key is not a restricted decryption key '
                     'fixed to its TPM')


def transient_objects(connection):
    """How many transient objects the TPM holds (none should be left)."""
    with connection.esapi() as ectx:
        _, data = ectx.get_capability(TPM2_CAP.HANDLES,
                                      TPM2_HC.TRANSIENT_FIRST, 64)
    return data.data.handles.count


def flipped(data, position=-1):
    data = bytearray(data)
    data[position] ^= 0x01
    return bytes(data)


def with_attributes(public_bytes, attributes):
    """A real key's TPM2B_PUBLIC with other object attributes."""
    public, _ = TPM2B_PUBLIC.unmarshal(public_bytes)
    public.publicArea.objectAttributes = attributes
    return public.marshal()


class DuplicationTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tpm = self.useFixture(services.SoftwareTPMFixture())
        self.ak = self.tpm.attestation_key()
        self.key = certify.create_certified_storage_key(
            self.tpm.connection, self.ak, NONCE)

    def refused_by_tpm(self, connection, duplicated, unique=None):
        error = self.assertRaises(
            exception.TPMError, duplication.unwrap, connection,
            self.key.unique if unique is None else unique, duplicated)
        self.assertIn('TPM at %s refused a command' % connection.tcti,
                      str(error))
        return error


class TestRoundTrip(DuplicationTestCase):

    def test_secret_opens_in_the_tpm_that_certified_the_key(self):
        duplicated = duplication.wrap(self.key.public, SECRET)
        self.assertEqual(SECRET, duplication.unwrap(
            self.tpm.connection, self.key.unique, duplicated))

    def test_secrets_of_one_and_of_128_bytes(self):
        for secret in (b'\x00', bytes(range(128))):
            duplicated = duplication.wrap(self.key.public, secret)
            self.assertEqual(secret, duplication.unwrap(
                self.tpm.connection, self.key.unique, duplicated))

    def test_each_wrap_has_a_fresh_seed(self):
        first = duplication.wrap(self.key.public, SECRET)
        second = duplication.wrap(self.key.public, SECRET)
        self.assertNotEqual(first.seed, second.seed)
        self.assertNotEqual(first.duplicate, second.duplicate)
        self.assertNotIn(SECRET, first.duplicate + first.seed + first.public)
        for duplicated in (first, second):
            self.assertEqual(SECRET, duplication.unwrap(
                self.tpm.connection, self.key.unique, duplicated))

    def test_the_same_key_opens_many_duplicates_and_leaves_no_object(self):
        # swtpm holds 3 transient objects: a leaked handle shows at once.
        for i in range(20):
            secret = b'secret %d' % i
            duplicated = duplication.wrap(self.key.public, secret)
            self.assertEqual(secret, duplication.unwrap(
                self.tpm.connection, self.key.unique, duplicated))
        self.assertEqual(0, transient_objects(self.tpm.connection))


class TestOtherTPMs(DuplicationTestCase):

    def setUp(self):
        super().setUp()
        self.other = self.useFixture(services.SoftwareTPMFixture())
        self.duplicated = duplication.wrap(self.key.public, SECRET)

    def test_another_tpm_does_not_open_it(self):
        error = self.refused_by_tpm(self.other.connection, self.duplicated)
        self.assertIn('integrity check failed', str(error))
        self.assertEqual(0, transient_objects(self.other.connection))

    def test_the_same_unique_is_another_key_in_another_tpm(self):
        # Both TPMs derive the key from their own NULL seed.
        with self.other.connection.esapi() as ectx:
            handle = certify.load_storage_key(ectx, self.key.unique)
            public, _, _ = ectx.read_public(handle)
            ectx.flush_context(handle)
        self.assertNotEqual(self.key.public, public.marshal())

    def test_a_key_of_the_other_tpm_opens_only_its_own_duplicates(self):
        other_key = certify.create_certified_storage_key(
            self.other.connection, self.other.attestation_key(), NONCE)
        theirs = duplication.wrap(other_key.public, b'for the other TPM')
        self.assertEqual(b'for the other TPM', duplication.unwrap(
            self.other.connection, other_key.unique, theirs))
        self.refused_by_tpm(self.tpm.connection, theirs,
                            unique=other_key.unique)
        self.refused_by_tpm(self.other.connection, self.duplicated,
                            unique=other_key.unique)

    def test_another_unique_in_the_same_tpm_does_not_open_it(self):
        error = self.refused_by_tpm(self.tpm.connection, self.duplicated,
                                    unique=b'\x00' * 32)
        self.assertIn('integrity check failed', str(error))

    def test_the_key_is_gone_after_the_tpm_resets(self):
        # Keys of the NULL hierarchy do not outlive the host's boot.
        self.tpm.connection.close()
        self.tpm.tpm.stop()
        self.tpm.tpm.start()
        self.refused_by_tpm(self.tpm.connection, self.duplicated)


class TestReceiverKey(DuplicationTestCase):

    def test_the_certified_storage_key_is_accepted(self):
        public = duplication.check_receiver_key(self.key.public)
        self.assertEqual(self.key.public, public.marshal())

    def test_keys_that_can_leave_their_tpm_are_refused(self):
        full = certify.STORAGE_KEY_ATTRIBUTES
        for missing in (TPMA_OBJECT.FIXEDTPM, TPMA_OBJECT.FIXEDPARENT,
                        TPMA_OBJECT.RESTRICTED, TPMA_OBJECT.DECRYPT):
            public = with_attributes(self.key.public, full & ~missing)
            error = self.assertRaises(exception.EvidenceError,
                                      duplication.check_receiver_key, public)
            self.assertEqual('%s (attributes 0x%08x)'
                             % (NOT_A_STORAGE_KEY, int(full & ~missing)),
                             str(error))
            self.assertRaises(exception.EvidenceError, duplication.wrap,
                              public, SECRET)

    def test_a_signing_key_is_refused(self):
        error = self.assertRaises(exception.EvidenceError,
                                  duplication.check_receiver_key,
                                  self.ak.public, 'the migration key')
        self.assertIn('the migration key is not a restricted decryption key '
                      'fixed to its TPM', str(error))
        self.assertRaises(exception.EvidenceError, duplication.wrap,
                          self.ak.public, SECRET)

    def test_an_rsa_storage_key_is_refused(self):
        template = TPM2B_PUBLIC.parse(
            'rsa2048:aes128cfb',
            objectAttributes=certify.STORAGE_KEY_ATTRIBUTES)
        with self.tpm.connection.esapi() as ectx:
            handle, public, _, _, _ = ectx.create_primary(
                None, template, ESYS_TR.NULL)
            ectx.flush_context(handle)
        error = self.assertRaises(exception.EvidenceError,
                                  duplication.check_receiver_key,
                                  public.marshal())
        self.assertEqual('the receiving key is not an ECC key', str(error))
        self.assertRaises(exception.EvidenceError, duplication.wrap,
                          public.marshal(), SECRET)

    def test_garbage_is_refused(self):
        size = len(self.key.public)
        cases = [
            (b'garbage', 'the receiving key is not a valid TPM2B_PUBLIC'),
            (b'', 'the receiving key is empty'),
            (None, 'the receiving key is not a byte string'),
            ('text', 'the receiving key is not a byte string'),
            (b'\x00' * 1025, 'the receiving key is 1025 bytes; at most '
                             '1024 are accepted'),
            (self.key.public + b'\x00',
             'the receiving key has 1 bytes after its TPM2B_PUBLIC'),
            (self.key.public[:-1],
             'the receiving key is not a valid TPM2B_PUBLIC'),
            ((size - 3).to_bytes(2, 'big') + self.key.public[2:],
             'the receiving key: its size field does not match its length'),
        ]
        for public, message in cases:
            error = self.assertRaises(exception.EvidenceError,
                                      duplication.check_receiver_key, public)
            self.assertIn(message, str(error))
            self.assertRaises(exception.EvidenceError, duplication.wrap,
                              public, SECRET)


class TestWrapBounds(DuplicationTestCase):

    def test_secret_is_1_to_128_bytes(self):
        for secret in (b'', b's' * 129, 'text', None, bytearray(b's')):
            error = self.assertRaises(exception.TPMError, duplication.wrap,
                                      self.key.public, secret)
            self.assertEqual('a duplicated secret is 1 to 128 bytes',
                             str(error))


class TestUnwrapRefusals(DuplicationTestCase):

    def setUp(self):
        super().setUp()
        self.duplicated = duplication.wrap(self.key.public, SECRET)

    def changed(self, **fields):
        return dataclasses.replace(self.duplicated, **fields)

    def refused_as_evidence(self, duplicated, message):
        error = self.assertRaises(exception.EvidenceError,
                                  duplication.unwrap, self.tpm.connection,
                                  self.key.unique, duplicated)
        self.assertIn(message, str(error))

    def test_a_tampered_duplicate_seed_or_public_is_refused(self):
        middle = len(self.duplicated.duplicate) // 2
        for field, position, reason in (
                ('public', -1, 'integrity check failed'),
                ('duplicate', -1, 'integrity check failed'),
                ('duplicate', middle, 'integrity check failed'),
                ('seed', -1, 'point is not on the required curve')):
            tampered = self.changed(**{field: flipped(
                getattr(self.duplicated, field), position)})
            error = self.refused_by_tpm(self.tpm.connection, tampered)
            self.assertIn(reason, str(error))

    def test_parts_of_two_duplicates_do_not_combine(self):
        other = duplication.wrap(self.key.public, b'another secret')
        for mixed in (self.changed(seed=other.seed),
                      self.changed(duplicate=other.duplicate),
                      self.changed(public=other.public)):
            self.refused_by_tpm(self.tpm.connection, mixed)

    def test_oversized_fields_are_refused_before_the_tpm(self):
        self.refused_as_evidence(
            self.changed(public=b'\x00' * 1025),
            'duplicated object is 1025 bytes; at most 1024 are accepted')
        self.refused_as_evidence(
            self.changed(duplicate=b'\x00' * 1025),
            'duplicate is 1025 bytes; at most 1024 are accepted')
        self.refused_as_evidence(
            self.changed(seed=b'\x00' * 513),
            'encrypted seed is 513 bytes; at most 512 are accepted')

    def test_trailing_bytes_are_refused(self):
        self.refused_as_evidence(
            self.changed(public=self.duplicated.public + b'\x00'),
            'duplicated object has 1 bytes after its TPM2B_PUBLIC')
        self.refused_as_evidence(
            self.changed(duplicate=self.duplicated.duplicate + b'\x00'),
            'duplicate has 1 bytes after its TPM2B_PRIVATE')
        self.refused_as_evidence(
            self.changed(seed=self.duplicated.seed + b'\x00\x00'),
            'encrypted seed has 2 bytes after its TPM2B_ENCRYPTED_SECRET')

    def test_truncated_or_missing_fields_are_refused(self):
        self.refused_as_evidence(
            self.changed(duplicate=self.duplicated.duplicate[:-1]),
            'duplicate is not a valid TPM2B_PRIVATE')
        self.refused_as_evidence(
            self.changed(seed=self.duplicated.seed[:-1]),
            'encrypted seed is not a valid TPM2B_ENCRYPTED_SECRET')
        self.refused_as_evidence(
            self.changed(public=self.duplicated.public[:-1]),
            'duplicated object is not a valid TPM2B_PUBLIC')
        self.refused_as_evidence(self.changed(duplicate=b''),
                                 'duplicate is empty')
        self.refused_as_evidence(self.changed(seed=None),
                                 'encrypted seed is not a byte string')

    def test_only_a_sealed_data_object_is_imported(self):
        self.refused_as_evidence(
            self.changed(public=self.key.public),
            'the duplicated object is not a sealed data object')

    def test_refusals_leave_no_object_and_the_tpm_works_on(self):
        tampered = self.changed(duplicate=flipped(self.duplicated.duplicate))
        for _ in range(20):
            self.refused_by_tpm(self.tpm.connection, tampered)
        self.assertEqual(0, transient_objects(self.tpm.connection))
        self.assertEqual(SECRET, duplication.unwrap(
            self.tpm.connection, self.key.unique, self.duplicated))
