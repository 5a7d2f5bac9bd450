"""Running korora-libvirt-hook as libvirt runs it, for tests.

A process with ``DOMAIN OPERATION SUB_OPERATION EXTRA`` as arguments and
the domain XML on stdin; its status, stdout and stderr are what libvirt
acts on. Shared by the hook's own tests and by the tests of the hook as
``korora-manage libvirt-hook install`` installs it.
"""

import os
import subprocess
import sys
import time

INSTANCE = '7d3e2a10-5b4c-4f8e-9a61-2c0b8d9e4f35'
DOMAIN = 'instance-0000002a'

VTPM_XML = """<domain type='kvm'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <tpm model='tpm-crb'>
      <backend type='emulator' version='2.0'>
        <encryption secret='0f7c2d4e-3b1a-4e5d-8c9f-6a7b8c9d0e1f'/>
      </backend>
    </tpm>
  </devices>
</domain>
"""

# Seconds a hook run may take before the test gives up on it: far above
# the hook's own limits, only there so that a broken hook fails the test
# instead of hanging it.
RUN_LIMIT = 60


def xml(template=VTPM_XML, uuid=INSTANCE, name=DOMAIN):
    return (template % {'name': name, 'uuid': uuid}).encode()


def hook_command():
    """The installed console script if it is the one of this tree, else
    the module."""
    script = os.path.join(os.path.dirname(sys.executable),
                          'korora-libvirt-hook')
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, '-m', 'korora_nova.cmd.libvirt_hook']


def hook_environment(env=None):
    """The environment for a hook run: the test's own without a database
    override, unless env is given."""
    if env is None:
        env = dict(os.environ)
    env.pop('OS_KORORA_DATABASE__CONNECTION', None)
    return env


class HookResult:

    def __init__(self, process, elapsed):
        self.status = process.returncode
        self.stdout = process.stdout
        self.stderr = process.stderr.decode('utf-8', 'replace')
        self.elapsed = elapsed

    def __repr__(self):
        return ('status %s after %.1f s, stdout %r, stderr %r'
                % (self.status, self.elapsed, self.stdout[:200],
                   self.stderr[:1000]))


def run(command, stdin, env=None, cwd=None):
    """Run command (argv) with stdin (bytes); a HookResult."""
    started = time.monotonic()
    process = subprocess.run(command, input=stdin, capture_output=True,
                             timeout=RUN_LIMIT, env=hook_environment(env),
                             cwd=cwd)
    return HookResult(process, time.monotonic() - started)


class HookAssertions:
    """Assertions on a HookResult, for a testtools TestCase."""

    def assertPasses(self, result):
        self.assertEqual(0, result.status, result)
        self.assertEqual(b'', result.stdout, result)
        self.assertEqual('', result.stderr, result)

    def assertRefuses(self, result, *phrases):
        self.assertEqual(1, result.status, result)
        self.assertEqual(b'', result.stdout, result)
        self.assertTrue(result.stderr.startswith('Korora: '), result)
        self.assertTrue(result.stderr.endswith('\n'), result)
        self.assertEqual(1, result.stderr.count('\n'), result)
        self.assertNotIn('Traceback', result.stderr)
        for phrase in phrases:
            self.assertIn(phrase, result.stderr)
