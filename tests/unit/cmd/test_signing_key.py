"""korora-manage signing-key create: the key made, and the operator
told where its public half goes (the verifier's and korora-api's keys
are listed in different options)."""

import os
import stat
import subprocess

import fixtures

from korora_nova.cmd import manage
from tests import base
from tests.fixtures import daemons


class SigningKeyCreateTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.private = os.path.join(self.folder, 'key.pem')
        self.public = os.path.join(self.folder, 'key.pub.pem')
        self.config_file = daemons.write_config(
            os.path.join(self.folder, 'korora.conf'), {})

    def _create(self, *extra):
        """The installed korora-manage: (exit code, stdout, stderr)."""
        done = subprocess.run(
            [daemons.console_script('korora-manage'), '--config-file',
             self.config_file, 'signing-key', 'create', '--path',
             self.private, '--public', self.public] + list(extra),
            capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    def test_api_key_names_api_public_keys(self):
        code, out, _ = self._create('--for', 'api')

        self.assertEqual(manage.EXIT_OK, code)
        self.assertIn('[korora] api_public_keys', out)
        self.assertNotIn('verifier_public_keys', out)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.private).st_mode))
        with open(self.public) as stream:
            self.assertIn('BEGIN PUBLIC KEY', stream.read())

    def test_verifier_key_is_pinned_on_hosts(self):
        code, out, _ = self._create()

        self.assertEqual(manage.EXIT_OK, code)
        self.assertIn('on every host as [korora] verifier_public_keys', out)

    def test_existing_key_is_never_overwritten(self):
        self._create('--for', 'api')
        with open(self.private, 'rb') as stream:
            first = stream.read()

        code, _, err = self._create('--for', 'api')

        self.assertNotEqual(manage.EXIT_OK, code)
        self.assertIn(self.private, err)
        with open(self.private, 'rb') as stream:
            self.assertEqual(first, stream.read())

    def test_unknown_user_is_a_usage_error(self):
        code, _, err = self._create('--for', 'placement')

        self.assertEqual(manage.EXIT_USAGE, code)
        self.assertIn('placement', err)
        self.assertFalse(os.path.exists(self.private))
