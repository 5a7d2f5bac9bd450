"""The key nova-compute and the vTPM manager of one host share, and the
replies sealed under it (real files, real AES-GCM)."""

import os
import stat

import fixtures

from korora_nova import exception
from korora_nova.tests import base
from korora_nova.vtpm_manager import local_channel

BINDING = (b'{"dest_host":"compute-2","migration_uuid":'
           b'"5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97"}')
OTHER_BINDING = BINDING.replace(b'5f0c3d1e', b'6a1d4e2f')
DATA_KEY = bytes(range(32))
DOES_NOT_OPEN = ('the sealed reply does not open with this host\'s local '
                 'channel key for this migration')


class LocalChannelTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.folder = self.useFixture(fixtures.TempDir()).path
        # The modes asserted below are those of a service's usual umask.
        self.addCleanup(os.umask, os.umask(0o022))

    def path(self, *names):
        return os.path.join(self.folder, *names)

    def write(self, name, data):
        with open(self.path(name), 'wb') as handle:
            handle.write(data)
        return self.path(name)


class TestKeyFile(LocalChannelTestCase):

    def test_create_key_makes_its_folder_and_a_0640_key_file(self):
        path = self.path('korora', 'local-channel.key')
        key = local_channel.create_key(path)
        info = os.lstat(path)
        self.assertTrue(stat.S_ISREG(info.st_mode))
        self.assertEqual(0o640, stat.S_IMODE(info.st_mode))
        self.assertEqual(0o750, stat.S_IMODE(
            os.stat(self.path('korora')).st_mode))
        self.assertEqual(32, len(key))
        with open(path, 'rb') as handle:
            self.assertEqual(key, handle.read())
        self.assertEqual(key, local_channel.load_key(path))

    def test_create_key_keeps_an_existing_key(self):
        path = self.path('local-channel.key')
        first = local_channel.create_key(path)
        self.assertEqual(first, local_channel.create_key(path))
        self.assertEqual(first, local_channel.load_key(path))
        self.assertNotEqual(first, local_channel.create_key(
            self.path('other-host.key')))

    def test_create_key_does_not_replace_a_damaged_key(self):
        path = self.write('local-channel.key', b'k' * 31)
        error = self.assertRaises(exception.ConfigurationError,
                                  local_channel.create_key, path)
        self.assertEqual('the local channel key %s is not 32 bytes' % path,
                         str(error))
        with open(path, 'rb') as handle:
            self.assertEqual(b'k' * 31, handle.read())

    def test_create_key_does_not_write_through_a_symlink(self):
        target = self.path('elsewhere')
        link = self.path('local-channel.key')
        os.symlink(target, link)
        error = self.assertRaises(exception.ConfigurationError,
                                  local_channel.create_key, link)
        self.assertIn('cannot read the local channel key %s ([korora] '
                      'local_channel_key)' % link, str(error))
        self.assertFalse(os.path.lexists(target))

    def test_missing_key(self):
        path = self.path('missing.key')
        error = self.assertRaises(exception.ConfigurationError,
                                  local_channel.load_key, path)
        self.assertEqual('cannot read the local channel key %s ([korora] '
                         'local_channel_key): No such file or directory'
                         % path, str(error))

    def test_key_of_a_wrong_size(self):
        for size in (0, 16, 31, 33, 4096):
            path = self.write('key-%d' % size, b'k' * size)
            error = self.assertRaises(exception.ConfigurationError,
                                      local_channel.load_key, path)
            self.assertEqual('the local channel key %s is not 32 bytes'
                             % path, str(error))

    def test_key_behind_a_symlink_is_refused(self):
        real = local_channel.create_key(self.path('real.key'))
        self.assertEqual(32, len(real))
        link = self.path('local-channel.key')
        os.symlink(self.path('real.key'), link)
        error = self.assertRaises(exception.ConfigurationError,
                                  local_channel.load_key, link)
        self.assertEqual('cannot read the local channel key %s ([korora] '
                         'local_channel_key): Too many levels of symbolic '
                         'links' % link, str(error))


class TestSealing(LocalChannelTestCase):

    def setUp(self):
        super().setUp()
        self.key = local_channel.create_key(self.path('local-channel.key'))
        self.sealed = local_channel.seal(self.key, DATA_KEY, BINDING)

    def refused(self, sealed, message=DOES_NOT_OPEN, key=None,
                binding=BINDING):
        error = self.assertRaises(exception.EvidenceError,
                                  local_channel.open_sealed,
                                  key or self.key, sealed, binding)
        self.assertEqual(message, str(error))

    def test_round_trip(self):
        self.assertEqual(DATA_KEY, local_channel.open_sealed(
            self.key, self.sealed, BINDING))
        self.assertEqual(12 + len(DATA_KEY) + 16, len(self.sealed))
        self.assertNotIn(DATA_KEY, self.sealed)

    def test_each_seal_has_a_fresh_nonce(self):
        again = local_channel.seal(self.key, DATA_KEY, BINDING)
        self.assertNotEqual(self.sealed[:12], again[:12])
        self.assertNotEqual(self.sealed, again)
        self.assertEqual(DATA_KEY, local_channel.open_sealed(
            self.key, again, BINDING))

    def test_empty_and_largest_plaintexts(self):
        for plaintext in (b'', b'p' * local_channel.MAX_PLAINTEXT):
            sealed = local_channel.seal(self.key, plaintext, BINDING)
            self.assertEqual(plaintext, local_channel.open_sealed(
                self.key, sealed, BINDING))

    def test_oversized_plaintext_is_not_sealed(self):
        error = self.assertRaises(exception.EvidenceError,
                                  local_channel.seal, self.key,
                                  b'p' * (local_channel.MAX_PLAINTEXT + 1),
                                  BINDING)
        self.assertEqual('at most 4096 bytes cross the local channel',
                         str(error))

    def test_another_binding_does_not_open_it(self):
        self.refused(self.sealed, binding=OTHER_BINDING)
        self.refused(self.sealed, binding=b'')

    def test_another_hosts_key_does_not_open_it(self):
        other = local_channel.create_key(self.path('other-host.key'))
        self.refused(self.sealed, key=other)

    def test_any_flipped_byte_is_detected(self):
        for position in range(len(self.sealed)):
            tampered = bytearray(self.sealed)
            tampered[position] ^= 0x80
            self.refused(bytes(tampered))

    def test_truncated_or_extended_replies(self):
        self.refused(self.sealed[:-1])
        self.refused(self.sealed + b'\x00')
        self.refused(self.sealed[:12] + self.sealed[13:])
        for short in (b'', self.sealed[:12], self.sealed[:27]):
            self.refused(short, 'the sealed reply has a wrong size')

    def test_oversized_or_mistyped_replies(self):
        for sealed in (b'\x00' * (12 + 16 + local_channel.MAX_PLAINTEXT + 1),
                       None, self.sealed.hex()):
            self.refused(sealed, 'the sealed reply has a wrong size')
