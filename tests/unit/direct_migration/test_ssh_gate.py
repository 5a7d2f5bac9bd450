"""The forced command of a migration peer's ssh key lets through only
korora-manage server receive."""

import os
import subprocess
import sys

import testtools

from korora_nova.direct_migration import ssh_gate
from korora_nova import exception
from tests.fixtures import daemons


class TestCheck(testtools.TestCase):

    def test_the_peer_commands_receive_passes(self):
        for original in (
                'korora-manage server receive',
                'korora-manage --config-file /etc/korora/korora.conf '
                'server receive',
                'PYTHONPATH=/srv/korora /opt/venv/bin/korora-manage '
                'server receive'):
            self.assertIsNone(ssh_gate.check(original), original)

    def test_anything_else_is_refused_naming_it(self):
        for original in ('xl migrate-receive', 'xl -t migrate-receive -e',
                         'sh -c "korora-manage server receive; xl '
                         'migrate-receive"', 'korora-manage server migrate',
                         'server receive', '', None):
            error = self.assertRaises(exception.SSHCommandRefused,
                                      ssh_gate.check, original)
            self.assertIn('may only run korora-manage server receive',
                          str(error))
        error = self.assertRaises(exception.SSHCommandRefused,
                                  ssh_gate.check, 'xl migrate-receive')
        self.assertIn("refused 'xl migrate-receive'. A plain xl migrate "
                      'bypasses libvirt', str(error))

    def test_what_is_named_is_bounded_and_printable(self):
        error = self.assertRaises(exception.SSHCommandRefused,
                                  ssh_gate.check, 'x\x1b[2J' * 1000)
        self.assertNotIn('\x1b', str(error))
        self.assertLess(len(str(error)), ssh_gate.SHOWN + 300)


class TestCommand(testtools.TestCase):
    """korora-manage server ssh-gate, as sshd runs it."""

    def test_xl_migrate_receive_is_refused_and_nothing_runs(self):
        result = subprocess.run(
            [daemons.console_script('korora-manage'), '--config-file',
             os.devnull, 'server', 'ssh-gate'], input=b'',
            capture_output=True, timeout=120,
            env=dict(os.environ, SSH_ORIGINAL_COMMAND='xl migrate-receive',
                     PYTHONPATH=os.pathsep.join(sys.path)))
        self.assertEqual(1, result.returncode, result.stderr)
        self.assertEqual(b'', result.stdout)
        self.assertIn(b"korora-manage: Korora: this ssh key may only run "
                      b"korora-manage server receive; refused "
                      b"'xl migrate-receive'", result.stderr)
        self.assertNotIn(b'Traceback', result.stderr)
