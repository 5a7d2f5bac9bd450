"""korora-manage server migrate between two real libvirt hosts on this
machine (tests.fixtures.real_migration: two libvirtd, each host with its
swtpm platform TPM and its vTPM manager on real RabbitMQ, the verifier
in this process), run as an operator runs it: the real command in a
process of its own with host kvm-a's configuration, its peer command
the real ``korora-manage server receive`` with kvm-b's (ssh on Xen
hosts; see test_xen_hosts for the dom0s).

The attacks: a destination whose PCRs changed; a destination's half
that claims a verified arrival it never had checked; a vTPM state
changed on the destination before the check; a transfer that fails; a
source that sends abort before the arrival was checked.
"""

import os
import subprocess
import sys

import fixtures
import libvirt
import oslo_messaging as messaging
import testtools

from korora_nova import conf
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from tests.fixtures import daemons
from tests.fixtures import libvirt_hosts
from tests.fixtures import peer_proxy
from tests.fixtures import real_migration

SOURCE, DEST = 'kvm-a', 'kvm-b'
PASSPHRASE = 'vtpm-passphrase-direct-5c2a'
COMMAND_TIMEOUT = 300


class DirectMigrationTest(real_migration.RealMigrationTestCase):

    GUEST_NAME = 'direct-guest'
    PASSPHRASE = PASSPHRASE

    def setUp(self):
        super().setUp()
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.configs = {name: self.write_config(name)
                        for name in (SOURCE, DEST)}

    def write_config(self, name, peer_command=None, stream_uri=None,
                     verifier_pin=None):
        other = self.bed.other(name)
        receive = '%s --config-file %s server receive' % (
            daemons.console_script('korora-manage'),
            os.path.join(self.folder, '%s.conf' % other))
        sections = {
            'DEFAULT': {
                'host': name,
                'transport_url': conf.CONF.transport_url,
                'control_exchange': conf.CONF.control_exchange},
            'korora': {
                'verifier_public_keys': ','.join(
                    conf.CONF.korora.verifier_public_keys),
                'libvirt_hook_socket':
                    self.bed.managers[name].hook_socket,
                'libvirt_uri': self.hosts[name].uri},
            'korora_direct_migration': {
                'peer_command': peer_command or receive,
                'libvirt_uri': self.hosts[other].uri,
                'stream_uri': stream_uri or libvirt_hosts.MIGRATE_URI,
                'listen_address': libvirt_hosts.LISTEN_ADDRESS}}
        if verifier_pin:
            sections['upgrade_levels'] = {'korora_verifier': verifier_pin}
        return daemons.write_config(
            os.path.join(self.folder, '%s.conf' % name), sections)

    def server_migrate(self, *extra):
        """korora-manage server migrate on kvm-a: (exit, stdout, stderr)."""
        argv = [daemons.console_script('korora-manage'), '--config-file',
                self.configs[SOURCE], 'server', 'migrate', self.guest.name,
                '--to', DEST] + list(extra)
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT,
                                env=dict(os.environ,
                                         PYTHONPATH=os.pathsep.join(
                                             sys.path)))
        self.addDetail('server-migrate', testtools.content.text_content(
            'exit %d\n%s\n%s' % (result.returncode, result.stdout,
                                 result.stderr)))
        return result.returncode, result.stdout, result.stderr

    def proxied(self, *options):
        """A peer command through tests.fixtures.peer_proxy."""
        real = self.write_config(DEST)
        return '%s -m tests.fixtures.peer_proxy %s -- %s --config-file %s ' \
            'server receive' % (sys.executable, ' '.join(options),
                                daemons.console_script('korora-manage'), real)

    def state_on(self, name):
        """libvirt's state of the guest on host name, None if absent."""
        try:
            return self.hosts[name].domain(self.guest).state()[0]
        except libvirt.libvirtError:
            return None

    def only_record(self):
        found = records.list()
        self.assertEqual(1, len(found), found)
        return found[0]

    def assert_aborted_by_destination(self, record):
        """The verifier's record and its audit log: the destination
        aborted it, for the reason the source gave."""
        self.assertEqual(states.ABORTED, record.state)
        self.assertEqual(peer_proxy.ABORT_REASON, record.reason)
        aborts = [entry.host for entry in audit.entries(record.uuid)
                  if entry.to_state == states.ABORTED]
        self.assertEqual([DEST], aborts)

    def assert_nothing_left_on_destination(self):
        self.assertIsNone(self.state_on(DEST))
        self.assertFalse(os.path.exists(
            self.hosts[DEST].state_path(self.guest.uuid)))
        self.assertFalse(self.hosts[DEST].has_secret(self.guest.secret_uuid))


class TestDirectMigration(DirectMigrationTest):

    def test_moves_to_a_trusted_host_and_commits(self):
        status, out, err = self.server_migrate()
        self.assertEqual(0, status, err)
        record = self.only_record()
        self.assertEqual(states.COMMITTED, record.state)
        self.assertIn('direct-guest moved to kvm-b: migration %s committed'
                      % record.uuid, out)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state_on(DEST))
        # The source's copy is gone: its definition and its vTPM state.
        self.assertIsNone(self.state_on(SOURCE))
        self.assertFalse(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))
        self.assertTrue(os.path.exists(
            self.hosts[DEST].state_path(self.guest.uuid)))

    def test_destination_whose_pcrs_changed_is_refused_before_anything_moves(
            self):
        self.bed.managers[DEST].extend_pcr(10, b'unexpected kernel module')
        status, out, err = self.server_migrate()
        self.assertEqual(1, status, out)
        self.assertIn('kvm-b: PCR sha256:10', err)
        self.assertNotIn('Traceback', err)
        self.assertEqual([], records.list())
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state_on(SOURCE))
        self.assertIsNone(self.state_on(DEST))

    def test_a_failed_transfer_is_aborted_and_the_domain_stays(self):
        # Nothing listens at the migration stream's address.
        self.configs[SOURCE] = self.write_config(
            SOURCE, stream_uri='tcp://127.0.0.1:9')
        status, out, err = self.server_migrate()
        self.assertEqual(1, status, out)
        self.assertIn('the migration of direct-guest to', err)
        self.assertEqual(states.ABORTED, self.only_record().state)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state_on(SOURCE))
        self.assertIsNone(self.state_on(DEST))


class TestAttacksOnDirectMigration(DirectMigrationTest):

    def test_a_destination_claiming_a_verified_arrival_gets_no_commit(self):
        self.configs[SOURCE] = self.write_config(
            SOURCE, peer_command=self.proxied('--claim-verified'))
        status, out, err = self.server_migrate()
        self.assertEqual(1, status, err)
        record = self.only_record()
        self.assertEqual(states.MEASURED, record.state)
        # The verifier's record is what the source reports.
        self.assertIn('direct-guest not moved: held on kvm-b (migration %s): '
                      'the verifier holds the migration at MEASURED, not '
                      'verified' % record.uuid, out)
        # Nothing runs unverified, and the source kept its copy.
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, self.state_on(DEST))
        self.assertEqual(libvirt.VIR_DOMAIN_SHUTOFF, self.state_on(SOURCE))
        self.assertTrue(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))

    def test_vtpm_state_changed_on_the_destination_is_quarantined(self):
        self.configs[SOURCE] = self.write_config(
            SOURCE, peer_command=self.proxied(
                '--alter', self.hosts[DEST].state_path(self.guest.uuid)))
        status, out, err = self.server_migrate()
        self.assertEqual(1, status, err)
        record = self.only_record()
        self.assertEqual(states.QUARANTINED, record.state)
        self.assertIn('direct-guest not moved: quarantined on kvm-b '
                      '(migration %s): vtpm-state' % record.uuid, out)
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, self.state_on(DEST))
        self.assertEqual(libvirt.VIR_DOMAIN_SHUTOFF, self.state_on(SOURCE))
        self.assertTrue(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))

    def test_a_source_aborting_after_the_transfer_leaves_one_stopped_copy(
            self):
        # The domain arrived paused; the source sends abort where it
        # would ask for the arrival's check.
        self.configs[SOURCE] = self.write_config(
            SOURCE, peer_command=self.proxied(
                '--abort-instead-of', 'verify_arrival'))
        status, out, err = self.server_migrate()
        self.assertEqual(1, status, err)
        record = self.only_record()
        # The verifier's record, not what the destination answered.
        self.assertIn('direct-guest not moved: aborted on kvm-b (migration '
                      '%s): the verifier recorded the migration as '
                      'aborted, not verified; its stopped definition stays '
                      'on kvm-a' % record.uuid, out)
        self.assert_aborted_by_destination(record)
        # The destination removed its paused copy; the source's copy,
        # stopped by libvirt at the transfer's end, keeps its definition
        # and vTPM state: no copy runs, none is lost.
        self.assert_nothing_left_on_destination()
        self.assertEqual(libvirt.VIR_DOMAIN_SHUTOFF, self.state_on(SOURCE))
        self.assertTrue(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))

    def test_a_source_pinned_below_migration_show_reports_the_same(self):
        # A rolling upgrade: this host still speaks the verifier's RPC
        # API 1.5, and reads the final record from an abort's answer.
        self.configs[SOURCE] = self.write_config(
            SOURCE, peer_command=self.proxied(
                '--abort-instead-of', 'verify_arrival'), verifier_pin='1.5')
        status, out, err = self.server_migrate()
        self.assertEqual(1, status, err)
        record = self.only_record()
        self.assertIn('direct-guest not moved: aborted on kvm-b (migration '
                      '%s): the verifier recorded the migration as '
                      'aborted, not verified' % record.uuid, out)
        # Its abort changed nothing: the destination's is the only one.
        self.assert_aborted_by_destination(record)
        self.assertEqual(libvirt.VIR_DOMAIN_SHUTOFF, self.state_on(SOURCE))

    def test_a_verifier_not_upgraded_yet_gets_no_commit(self):
        # Against the upgrade order: this host speaks RPC API 1.6, the
        # verifier still 1.5, so the record cannot be read after the
        # arrival. Unread is not verified: no commit, the source keeps
        # its copy.
        self.bed.verifier.verifier.target = messaging.Target(version='1.5')
        status, out, err = self.server_migrate()
        self.assertEqual(1, status, err)
        record = self.only_record()
        self.assertEqual(states.VERIFIED, record.state)
        self.assertIn('direct-guest not moved: held on kvm-b (migration %s): '
                      'the verifier\'s record of it could not be read: the '
                      'verifier does not serve migration_show at RPC API '
                      '1.6' % record.uuid, out)
        self.assertNotIn('Traceback', err)
        self.assertEqual(libvirt.VIR_DOMAIN_SHUTOFF, self.state_on(SOURCE))
        self.assertTrue(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))

    def test_a_source_aborting_before_the_transfer_keeps_it_running_here(
            self):
        # The source sends abort where it would open the transfer, then
        # moves the domain all the same: the destination's libvirt hook
        # lets no domain of an aborted migration in.
        self.configs[SOURCE] = self.write_config(
            SOURCE, peer_command=self.proxied(
                '--abort-instead-of', 'open_transfer'))
        status, out, err = self.server_migrate()
        self.assertEqual(1, status, out)
        self.assertIn('the migration of direct-guest to', err)
        self.assertIn('no Korora-approved migration', err)
        self.assert_aborted_by_destination(self.only_record())
        self.assert_nothing_left_on_destination()
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state_on(SOURCE))
