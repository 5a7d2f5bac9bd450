"""The private libvirt hosts of tests.fixtures.libvirt_hosts.

Two libvirtd daemons on this machine, each in a namespace of its own,
start; a guest with an emulated TPM 2.0 runs on one and live-migrates to
the other, its swtpm state in each host's private folder; a hook in the
destination's qemu.d refuses a migration; migration TLS works with the
pair's CA and fails without one; nothing runs or remains once a pair is
cleaned up. Skipped, with the reason, where no guest can run.
"""

import os

import fixtures
import libvirt
from testtools import content

from korora_nova.hypervisors import libvirt_backend
from tests import base
from tests.fixtures import libvirt_hosts

REFUSING_HOOK = '''#!/bin/sh
# Refuse every incoming migration; let everything else through.
cat >/dev/null
if [ "$2" = "migrate" ]; then
    echo "refused by the test hook for $1" >&2
    exit 1
fi
exit 0
'''

RECORDING_HOOK = '''#!/bin/sh
cat >/dev/null
echo "$1 $2 $3 $4" >> %s
exit 0
'''


class LibvirtHostsTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        reason = libvirt_hosts.availability()
        if reason:
            self.skipTest('no libvirt guest can run here: %s' % reason)

    def start_pair(self, **kwargs):
        pair = self.useFixture(libvirt_hosts.LibvirtHostPairFixture(
            **kwargs))
        self.addDetail('start-up', content.text_content(
            'pair answered after %.2f s (a: %.2f s, b: %.2f s)'
            % (pair.started_in, pair.a.started_in, pair.b.started_in)))
        return pair

    def assertState(self, host, guest):
        """The guest's swtpm state is in host's private folder and
        decrypts with the guest's secret."""
        path = host.state_path(guest.uuid)
        self.assertTrue(path.startswith(host.root + '/lib/swtpm/'), path)
        self.assertTrue(os.path.isfile(path), path)
        with open(path, 'rb') as stream:
            data = stream.read()
        self.assertRaises(Exception, libvirt_backend.swtpm_state_plaintext,
                          data)      # encrypted: needs the secret
        self.assertTrue(libvirt_backend.swtpm_state_plaintext(
            data, guest.secret_value))


class TestHosts(LibvirtHostsTestCase):

    def test_two_hosts_start_apart(self):
        pair = self.start_pair()
        a, b = pair.a, pair.b
        self.assertNotEqual(a.host_uuid, b.host_uuid)
        for host in (a, b):
            self.assertIn('<uuid>%s</uuid>' % host.host_uuid,
                          host.connection.getCapabilities())
            self.assertTrue(host.uri.startswith(
                'qemu+unix:///system?socket=' + host.root))
            names = [name for _pid, name in host.processes()]
            self.assertIn('libvirtd', names)
            self.assertIn('virtlogd', names)
            # The copy of /etc/libvirt holds no domain or network.
            self.assertEqual({}, host.domains())
        first_a, last_a = a.migration_ports
        first_b, last_b = b.migration_ports
        self.assertTrue(last_a < first_b or last_b < first_a)
        self.assertNotEqual(a.namespace, b.namespace)

    def test_guest_with_vtpm_runs_with_its_state_in_the_private_folder(self):
        pair = self.start_pair()
        guest = pair.a.start_guest()
        self.assertTrue(pair.a.is_running(guest))
        self.assertFalse(pair.b.is_running(guest))
        self.assertState(pair.a, guest)
        self.assertFalse(os.path.exists(
            os.path.join('/var/lib/libvirt/swtpm', guest.uuid)))
        self.assertFalse(os.path.exists(pair.b.state_path(guest.uuid)))
        names = [name for _pid, name in pair.a.processes()]
        self.assertIn('swtpm', names)
        self.assertTrue(any(name.startswith('qemu') for name in names),
                        names)
        self.assertEqual(libvirt_hosts.domain_type(),
                         guest.xml.split("type='", 1)[1].split("'", 1)[0])

    def test_guest_without_encryption(self):
        pair = self.start_pair()
        guest = pair.a.start_guest(encrypted=False)
        self.assertIsNone(guest.secret_uuid)
        with open(pair.a.state_path(guest.uuid), 'rb') as stream:
            self.assertTrue(libvirt_backend.swtpm_state_plaintext(
                stream.read()))


class TestMigration(LibvirtHostsTestCase):

    def test_live_migration_moves_guest_and_vtpm_state(self):
        pair = self.start_pair()
        guest = pair.a.start_guest()
        self.assertFalse(pair.b.has_secret(guest.secret_uuid))
        error = pair.a.migrate(guest, pair.b)
        self.assertIsNone(error)
        self.assertTrue(pair.b.is_running(guest))
        self.assertFalse(pair.a.is_running(guest))
        # As Nova does: the secret was defined on the destination first.
        self.assertTrue(pair.b.has_secret(guest.secret_uuid))
        self.assertState(pair.b, guest)
        with open(pair.a.state_path(guest.uuid), 'rb') as stream:
            source = libvirt_backend.swtpm_state_plaintext(
                stream.read(), guest.secret_value)
        with open(pair.b.state_path(guest.uuid), 'rb') as stream:
            destination = libvirt_backend.swtpm_state_plaintext(
                stream.read(), guest.secret_value)
        self.assertEqual(source, destination)
        # And back, with virsh, persistently (Nova's flags).
        self.assertIsNone(pair.b.virsh_migrate(guest, pair.a, persist=True))
        self.assertTrue(pair.a.is_running(guest))
        self.assertNotIn(guest.name, pair.b.domains())

    def test_paused_client_managed_migration(self):
        pair = self.start_pair()
        guest = pair.a.start_guest()
        self.assertIsNone(pair.a.migrate(guest, pair.b, p2p=False,
                                         paused=True, persist=True))
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED,
                         pair.b.domain(guest).state()[0])
        self.assertNotIn(guest.name, pair.a.domains())

    def test_hook_on_the_destination_refuses(self):
        # A hook given as the path of a script (text works too, below).
        script = self.useFixture(fixtures.TempDir()).join('refuse.sh')
        with open(script, 'w') as stream:
            stream.write(REFUSING_HOOK)
        pair = self.start_pair(hooks_b={'refuse': script})
        guest = pair.a.start_guest()
        error = pair.a.migrate(guest, pair.b)
        self.assertIsNotNone(error)
        self.assertIn('refused by the test hook for %s' % guest.name, error)
        self.assertTrue(pair.a.is_running(guest))
        self.assertFalse(pair.b.is_running(guest))
        error = pair.a.virsh_migrate(guest, pair.b)
        self.assertIsNotNone(error)
        self.assertIn('refused by the test hook for %s' % guest.name, error)
        self.assertTrue(pair.a.is_running(guest))

    def test_hooks_run_on_the_destination_only(self):
        log = self.useFixture(fixtures.TempDir()).join('hook.log')
        pair = self.start_pair(hooks_b={'record': RECORDING_HOOK % log})
        guest = pair.a.start_guest()
        self.assertFalse(os.path.exists(log))
        self.assertIsNone(pair.a.migrate(guest, pair.b))
        with open(log) as stream:
            calls = stream.read().splitlines()
        self.assertEqual('%s migrate begin -' % guest.name, calls[0])
        self.assertIn('%s started begin -' % guest.name, calls)

    def test_migration_tls(self):
        pair = self.start_pair(tls=True)
        guest = pair.a.start_guest()
        self.assertIsNone(pair.a.migrate(guest, pair.b, tls=True))
        self.assertTrue(pair.b.is_running(guest))
        self.assertState(pair.b, guest)
        self.assertIsNone(pair.b.virsh_migrate(guest, pair.a, tls=True))
        self.assertTrue(pair.a.is_running(guest))

    def test_migration_tls_fails_between_different_cas(self):
        # Hosts started one by one, each with a CA of its own: each
        # refuses the other's certificate.
        a = self.useFixture(libvirt_hosts.LibvirtHostFixture(
            'ca1', tls=libvirt_hosts.MigrationCA()))
        b = self.useFixture(libvirt_hosts.LibvirtHostFixture(
            'ca2', tls=libvirt_hosts.MigrationCA()))
        guest = a.start_guest()
        error = a.migrate(guest, b, tls=True)
        self.assertIsNotNone(error)
        self.assertIn('certificate', error)
        self.assertTrue(a.is_running(guest))
        self.assertFalse(b.is_running(guest))
        self.addDetail('error', content.text_content(error))

    def test_migration_tls_fails_without_certificates(self):
        pair = self.start_pair()
        guest = pair.a.start_guest()
        error = pair.a.migrate(guest, pair.b, tls=True)
        self.assertIsNotNone(error)
        self.assertIn('ca-cert.pem', error)
        self.assertTrue(pair.a.is_running(guest))
        self.assertFalse(pair.b.is_running(guest))


class TestCleanup(LibvirtHostsTestCase):

    def test_nothing_remains(self):
        pair = libvirt_hosts.LibvirtHostPairFixture()
        pair.setUp()
        try:
            guest = pair.a.start_guest()
            self.assertIsNone(pair.a.migrate(guest, pair.b))
            pair.a.start_guest()
            running = pair.a.processes() + pair.b.processes()
            roots = [pair.a.root, pair.b.root]
            pids = [pair.a.pid, pair.a.init_pid, pair.b.pid,
                    pair.b.init_pid]
        finally:
            pair.cleanUp()
        names = [name for _pid, name in running]
        self.assertEqual(2, names.count('swtpm'), names)
        self.assertEqual(2, names.count('libvirtd'), names)
        self.assertEqual(2, len([n for n in names if n.startswith('qemu')]),
                         names)
        for pid, name in running:
            self.assertFalse(_alive(pid), '%s (%d) runs on' % (name, pid))
        for pid in pids:
            self.assertFalse(_alive(pid), pid)
        for root in roots:
            self.assertFalse(os.path.exists(root), root)

    def test_stop_is_idempotent(self):
        host = self.useFixture(libvirt_hosts.LibvirtHostFixture('solo'))
        host.start_guest(encrypted=False)
        host.stop()
        host.stop()
        self.assertFalse(host.alive())
        self.assertFalse(_alive(host.init_pid))


def _alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as stream:
            return stream.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False
