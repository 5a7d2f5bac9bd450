"""Two real Xen 4.17 dom0s (tests.fixtures.xen_hosts), booted once for
the class (a TCG boot takes minutes): Xen runs, each dom0 has its
platform TPM, this machine's venv runs there; then Kororā deployed on
both (tests.fixtures.korora_on_xen, once for the class too): each
korora-vtpm-manager on dom0's TPM judged by the verifier in this process
over the broker on this machine, and korora-manage server migrate
between the dom0s."""

import hashlib
import sys

import fixtures
import testtools

from korora_nova.db import api as db
from korora_nova.migration import records
from korora_nova.migration import states
from tests.fixtures import korora_on_xen
from tests.fixtures import rabbitmq
from tests.fixtures import xen_hosts

LINK_PORT = 7000
CHANGED_PCR = korora_on_xen.CHANGED_PCR
MIGRATE_TIMEOUT = 900.0
TEST_TIMEOUT = 1800


class XenHostsTest(testtools.TestCase):
    """What runs on the dom0s of the Xen bed."""

    korora = None       # the class's KororaOnXenFixture, once deployed

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        reason = xen_hosts.availability()
        if reason:
            raise xen_hosts.XenHostError('the Xen bed cannot run here: %s'
                                         % reason)
        # A fixture whose setUp fails has cleaned up already.
        cls.bed = xen_hosts.XenDom0PairFixture()
        cls.bed.setUp()
        print('xen bed: image %s (%s s, reused: %s); both dom0s at a '
              'shell after %.0f s' % (
                  cls.bed.image.folder, cls.bed.image.build['seconds'],
                  cls.bed.image.build['reused'], cls.bed.started_in),
              file=sys.stderr, flush=True)

    @classmethod
    def tearDownClass(cls):
        if cls.korora is not None:
            cls.korora.cleanUp()
        cls.bed.cleanUp()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(TEST_TIMEOUT, gentle=True))

    def deployed(self):
        """Kororā on both dom0s, deployed by the first test that needs
        it for the rest of the class; the guest running on xen-a only,
        both dom0s trusted. The managers' logs join a failing test's."""
        cls = type(self)
        if cls.korora is None:
            korora = korora_on_xen.KororaOnXenFixture(self.bed)
            korora.setUp()      # a fixture whose setUp fails cleans up
            cls.korora = korora
        for host in self.bed.hosts:
            self.addOnException(
                lambda exc_info, host=host: self.addDetail(
                    '%s-manager.log' % host.name,
                    testtools.content.text_content(rabbitmq.tail(
                        cls.korora.manager_log(host), 64 * 1024))))
        cls.korora.guest_on_a()
        self.records_before = {record.uuid for record in records.list()}
        return cls.korora

    def run_ok(self, host, command, timeout=xen_hosts.COMMAND_TIMEOUT):
        status, output = host.run(command, timeout)
        self.assertEqual(0, status, '%s on %s: %s' % (command, host.name,
                                                      output))
        return output

    def test_both_dom0s_run_xen_417_with_a_tpm(self):
        for host in self.bed.hosts:
            info = self.run_ok(host, 'xl info')
            fields = {key.strip(): value.strip() for key, value in (
                line.split(':', 1) for line in info.splitlines()
                if ':' in line)}
            self.assertEqual(('4', '17'), (fields.get('xen_major'),
                                           fields.get('xen_minor')), info)
            self.assertIn('Domain-0', self.run_ok(host, 'xl list'))
            self.run_ok(host, 'test -c /dev/tpmrm0')
            # The platform TPM answers through the kernel's resource
            # manager: the EK certificate's NV index (swtpm_setup's).
            self.assertIn('0x1c00002', self.run_ok(
                host, 'tpm2_getcap -T device:/dev/tpmrm0 handles-nv-index'
            ).lower())

    def test_this_machines_venv_runs_in_dom0_and_the_link_carries(self):
        tree = xen_hosts.shared_paths()[0]
        python = sys.executable
        output = self.run_ok(
            self.bed.a, 'PYTHONPATH=%s %s -c "import sys, tpm2_pytss, '
            'korora_nova.tpm.connection as c; print(c.__file__, '
            'sys.version_info[:2])"' % (tree, python))
        self.assertIn('%s/korora_nova/tpm/connection.py (%d, %d)'
                      % ((tree,) + sys.version_info[:2]), output)
        # The private link: xen-b answers xen-a on 10.0.0.2.
        address = xen_hosts.PAIR_ADDRESSES['xen-b']
        self.run_ok(self.bed.b, '(timeout 60 %s -c "import socket; '
                    's = socket.create_server((\'%s\', %d)); '
                    'c, _ = s.accept(); c.sendall(b\'hello from xen-b\')" '
                    '>/dev/null 2>&1 &)' % (python, address, LINK_PORT))
        output = self.run_ok(
            self.bed.a, 'for i in 1 2 3 4 5; do %s -c "import socket; '
            'print(socket.create_connection((\'%s\', %d), 10).recv(64))" '
            '&& break; sleep 2; done' % (python, address, LINK_PORT))
        self.assertIn("b'hello from xen-b'", output)

    def test_manager_on_dom0s_tpm_is_judged_by_the_verifier(self):
        korora = self.deployed()
        host = self.bed.a
        verdict = korora.verifier.attestor.attest(host.name)
        self.assertTrue(verdict.trusted, verdict.summary())

        self.change_pcr(host, b'a module dom0 did not have')
        verdict = korora.verifier.attestor.attest(host.name)
        self.assertFalse(verdict.trusted, verdict.summary())
        self.assertIn('PCR sha256:%d = ' % CHANGED_PCR, verdict.summary())
        self.assertIn('not allowed by policy %s v1' % korora_on_xen.POLICY,
                      verdict.summary())
        trusted, summary, _ = db.host_trust_all()[host.name]
        self.assertFalse(trusted, summary)

    # Kororā's migration between the dom0s (korora-manage server
    # migrate, run in xen-a's dom0) and libvirt's own, refused by the
    # hook.

    def test_server_migrate_to_a_trusted_dom0_commits(self):
        self.deployed()
        status, output = self.server_migrate()
        self.assertEqual(0, status, output)
        record = self.only_record()
        self.assertEqual(states.COMMITTED, record.state)
        self.assertIn('%s moved to xen-b: migration %s committed'
                      % (xen_hosts.GUEST_NAME, record.uuid), output)
        self.assertEqual('running', self.bed.b.guest_state())
        # The source's copy is gone, definition included.
        self.assertIsNone(self.bed.a.guest_state())
        # The signed manifest verified on arrival holds the guest's disk.
        self.assertIn('disk:xvda', record.manifest)

    def test_a_dom0_whose_pcrs_changed_is_refused_before_anything_moves(
            self):
        self.deployed()
        self.change_pcr(self.bed.b, b'a module xen-b did not have')
        status, output = self.server_migrate()
        self.assertEqual(1, status, output)
        self.assertIn('xen-b: PCR sha256:%d' % CHANGED_PCR, output)
        self.assertNotIn('Traceback', output)
        self.assertEqual([], self.new_records())
        self.assertEqual('running', self.bed.a.guest_state())
        self.assertIsNone(self.bed.b.guest_state())

    def test_plain_virsh_migrate_is_refused_by_the_libxl_hook(self):
        self.deployed()
        status, output = self.bed.a.virsh(
            'migrate --persistent %s %s tcp://xen-b' % (
                xen_hosts.GUEST_NAME,
                xen_hosts.PEER_LIBVIRT_URI.format(host='xen-b')),
            MIGRATE_TIMEOUT)
        self.assertNotEqual(0, status, output)
        # libvirt 9.0's libxl driver gives the hook the definition only
        # at prepare begin, in xen-b's receiving thread: Kororā's reason
        # is in xen-b's libvirt error (its log), and the source's virsh
        # says the migration failed.
        self.assertIn('error:', output)
        log = self.run_ok(self.bed.b, 'grep -F "Korora: " '
                          '/var/log/libvirt/libvirtd.log | tail -n 1')
        self.assertIn('Korora: incoming live migration of domain %s '
                      'refused' % xen_hosts.GUEST_NAME, log)
        self.assertIn('no Korora-approved migration', log)
        self.assertIn('prepare begin', log)
        self.assertEqual('running', self.bed.a.guest_state())
        self.assertIsNone(self.bed.b.guest_state())

    def test_a_plain_xl_migrate_is_refused_by_the_ssh_gate(self):
        # xl migrate runs "xl migrate-receive" on xen-b over ssh, outside
        # libvirt and its hooks; the key's forced command refuses it.
        self.deployed()
        status, output = self.bed.a.run('xl migrate %s xen-b'
                                        % xen_hosts.GUEST_NAME,
                                        MIGRATE_TIMEOUT)
        self.assertNotEqual(0, status, output)
        self.assertIn('Korora: this ssh key may only run korora-manage '
                      'server receive', output)
        self.assertIn('xl migrate-receive', output)
        self.assertEqual('running', self.bed.a.guest_state())
        self.assertIsNone(self.bed.b.guest_state())
        self.assertNotIn(xen_hosts.GUEST_NAME,
                         self.run_ok(self.bed.b, 'xl list'))

    def test_a_disk_altered_on_the_destination_is_quarantined(self):
        self.deployed()
        # xen-b's copy of the guest's disk (each dom0 has its own, as
        # if on storage both see) differs from the one that left.
        self.run_ok(self.bed.b, 'printf altered | dd of=%s conv=notrunc,'
                    'fsync status=none' % xen_hosts.GUEST_DISK_DEVICE)
        status, output = self.server_migrate()
        self.assertEqual(1, status, output)
        record = self.only_record()
        self.assertEqual(states.QUARANTINED, record.state)
        self.assertIn('%s not moved: quarantined on xen-b (migration %s): '
                      'disk:xvda' % (xen_hosts.GUEST_NAME, record.uuid),
                      output)
        self.assertEqual('paused', self.bed.b.guest_state())
        self.assertEqual('shut off', self.bed.a.guest_state())

    def change_pcr(self, host, measured):
        """Extend CHANGED_PCR of host's TPM with measured's digest, as a
        module dom0 did not have would; reset again when the test ends,
        so the next test finds the dom0 as the policy has it."""
        self.addCleanup(host.run, 'tpm2_pcrreset -T device:/dev/tpmrm0 %d'
                        % CHANGED_PCR)
        self.run_ok(host, 'tpm2_pcrextend -T device:/dev/tpmrm0 %d:sha256=%s'
                    % (CHANGED_PCR, hashlib.sha256(measured).hexdigest()))

    def server_migrate(self):
        """korora-manage server migrate in xen-a's dom0: (exit, output)."""
        status, output = self.bed.a.run(korora_on_xen.korora_manage(
            'server migrate %s --to xen-b' % xen_hosts.GUEST_NAME),
            MIGRATE_TIMEOUT)
        self.addDetail('server-migrate', testtools.content.text_content(
            'exit %d\n%s' % (status, output)))
        return status, output

    def new_records(self):
        """The verifier's migration records this test made."""
        return [record for record in records.list()
                if record.uuid not in self.records_before]

    def only_record(self):
        found = self.new_records()
        self.assertEqual(1, len(found), found)
        return found[0]
