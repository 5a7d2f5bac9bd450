"""Kororā around a real libvirt live migration of a guest with a vTPM.

Two libvirt hosts on this machine (two libvirtd daemons, each in a mount
namespace of its own), KVM where /dev/kvm works and TCG otherwise; each
host has its own swtpm as platform TPM and its own vTPM manager, serving
on a real RabbitMQ broker; the verifier's database is SQLite;
korora-libvirt-hook is installed in each host's qemu.d
(korora_nova.tests.real_migration).

The live migration is libvirt's own call (virDomainMigrateToURI3, with
the flags Kororā gives Nova's) and the Kororā steps around it are the
functions the hooked driver calls, in the driver's order; where Nova's
libvirt driver itself acts on the source's copy (its clean-up), the
hooked LibvirtDriver is driven against the real host.
"""

import os

import libvirt
from nova import exception as nova_exception
from nova import objects
from nova.virt.libvirt import driver as libvirt_driver

from korora_nova.hooks import driver as hooks_driver
from korora_nova.hooks import manifest
from korora_nova.hypervisors import libvirt_migration
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.tests import base
from korora_nova.tests import libvirt_hosts
from korora_nova.tests import real_migration

SOURCE, DEST = 'kvm-a', 'kvm-b'
PASSPHRASE = 'vtpm-passphrase-7d1e'
INSTANCE_ID = 7


class RealHypervisorTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        reason = libvirt_hosts.availability()
        if reason:
            self.skipTest('no guest can run here: %s' % reason)
        self.bed = self.useFixture(real_migration.KororaLibvirtPairFixture())
        self.hosts = self.bed.hosts
        self.managers = self.bed.managers
        # Named as Nova names instance INSTANCE_ID (instance-%08x).
        self.guest = self.bed.start_guest(
            SOURCE, name='instance-%08x' % INSTANCE_ID,
            secret_value=PASSPHRASE)
        self.domain = self.hosts[SOURCE].domain(self.guest)

    def prepare(self):
        return self.bed.prepare(self.guest, SOURCE, DEST)

    def migrate(self, verify_before_resume=False):
        return self.bed.migrate(self.guest, SOURCE, DEST,
                                verify_before_resume=verify_before_resume)

    def finish(self, record, arrived, tamper=None, resume=False):
        return self.bed.finish(record, self.guest, arrived, tamper=tamper,
                               resume=resume)


class TestRealLiveMigration(RealHypervisorTestCase):

    def test_trusted_destination_gets_the_vtpm_proven_equal(self):
        record = self.prepare()
        arrived = self.migrate()
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, arrived.state()[0])
        # The source's copy is still there to be measured.
        self.assertTrue(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))
        record = self.finish(record, arrived)
        self.assertEqual(states.COMMITTED, record.state)
        signed, _quote = manifest.load(record.manifest)
        self.assertEqual(['vtpm-state', 'domain-security'],
                         list(signed.items))
        self.assertEqual(
            dict(signed.items),
            dict(self.bed.backend(DEST).measure(self.guest.uuid,
                                                vtpm_secret=PASSPHRASE)))
        # Committed: the source's vTPM state and domain are gone, the
        # guest runs on the destination with its own.
        self.assertFalse(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))
        self.assertNotIn(self.guest.name, self.hosts[SOURCE].domains())
        self.assertTrue(os.path.exists(
            self.hosts[DEST].state_path(self.guest.uuid)))
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, arrived.state()[0])
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())

    def test_migrates_back_and_forth(self):
        guest_host = SOURCE
        for _ in range(2):
            migrated, _times = self.bed.live_migrate(self.guest, guest_host)
            guest_host = self.bed.other(guest_host)
            self.assertEqual(states.COMMITTED, migrated.record.state)
            self.assertTrue(self.hosts[guest_host].is_running(self.guest))
        self.assertEqual(SOURCE, guest_host)
        self.assertEqual([states.COMMITTED] * 2,
                         [record.state for record in records.list()])

    def test_verify_before_resume(self):
        record = self.prepare()
        arrived = self.migrate(verify_before_resume=True)
        # Arrived paused: it runs only once the manifest checked out.
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, arrived.state()[0])
        record = self.finish(record, arrived, resume=True)
        self.assertEqual(states.COMMITTED, record.state)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, arrived.state()[0])

    def test_vtpm_state_altered_on_the_destination_is_quarantined(self):
        record = self.prepare()
        arrived = self.migrate()
        path = self.hosts[DEST].state_path(self.guest.uuid)

        def tamper():
            with open(path, 'r+b') as state:
                state.seek(100)
                byte = state.read(1)
                state.seek(100)
                state.write(bytes([byte[0] ^ 1]))

        record = self.finish(record, arrived, tamper=tamper)
        self.assertEqual(states.QUARANTINED, record.state)
        self.assertIn('vtpm-state', record.reason)
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, arrived.state()[0])
        # The source's copy stays, defined and with its vTPM state.
        self.assertTrue(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))
        self.assertIn(self.guest.name, self.hosts[SOURCE].domains())


class TestNovaCleanupKeepsTheSourceCopy(RealHypervisorTestCase):
    """Nova's libvirt driver cleans up the source (driver.cleanup, which
    undefines the domain without VIR_DOMAIN_UNDEFINE_KEEP_TPM when the
    instance's storage is not shared) before it asks the destination to
    finish, and so before Kororā's check there. The hooked LibvirtDriver,
    connected to the real source host, keeps the domain, its vTPM state
    and NVRAM until the commit."""

    def setUp(self):
        super().setUp()
        objects.register_all()
        self.config.config(group='libvirt',
                           connection_uri=self.hosts[SOURCE].uri)
        self.driver = hooks_driver.hooked(libvirt_driver.LibvirtDriver)(
            None, read_only=False)
        self.driver.korora_host = SOURCE
        self.instance = objects.Instance(
            id=INSTANCE_ID, uuid=self.guest.uuid, system_metadata={},
            image_ref='',
            flavor=objects.Flavor(extra_specs={
                'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb',
                'hw:tpm_secret_security': 'host'}))
        self.assertEqual(self.guest.name, self.instance.name)

    def undefine_as_nova_cleanup_does(self):
        # LibvirtDriver._cleanup(..., cleanup_instance_disks=True) ends
        # with this call (driver.cleanup with destroy_disks=True).
        self.driver._undefine_domain(self.instance, keep_vtpm=False,
                                     keep_nvram=False)

    def test_source_copy_kept_until_the_commit(self):
        record = self.prepare()
        arrived = self.migrate()
        self.undefine_as_nova_cleanup_does()
        self.assertIn(self.guest.name, self.hosts[SOURCE].domains())
        self.assertTrue(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))
        record = self.finish(record, arrived)
        self.assertEqual(states.COMMITTED, record.state)
        # What the hooked driver does after the commit.
        self.driver.korora_undefine_source(self.instance)
        self.assertNotIn(self.guest.name, self.hosts[SOURCE].domains())
        self.assertFalse(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))

    def test_without_a_korora_migration_nova_removes_it(self):
        # The guest runs; stop it as a finished migration leaves it.
        self.domain.destroy()
        self.undefine_as_nova_cleanup_does()
        self.assertNotIn(self.guest.name, self.hosts[SOURCE].domains())
        self.assertFalse(os.path.exists(
            self.hosts[SOURCE].state_path(self.guest.uuid)))

    def test_a_running_guest_is_never_undefined_at_commit(self):
        self.driver.korora_undefine_source(self.instance)
        self.assertTrue(self.hosts[SOURCE].is_running(self.guest))


class TestRefusedOnARealHypervisor(RealHypervisorTestCase):

    def test_destination_whose_pcrs_changed(self):
        self.managers[DEST].extend_pcr(10, b'unexpected kernel module')
        error = self.assertRaises(nova_exception.MigrationPreCheckError,
                                  self.prepare)
        self.assertIn('Korora: the destination host is not trusted: '
                      'kvm-b: PCR sha256:10', str(error))
        record = records.list()[0]
        self.assertEqual(states.ABORTED, record.state)
        # virsh migrate (no Nova, no Kororā record) meets the libvirt
        # hook on the destination, which refuses with Kororā's reason.
        error = self.hosts[SOURCE].virsh_migrate(self.guest,
                                                 self.hosts[DEST], tls=True)
        self.assertIsNotNone(error)
        self.assertIn('Korora: incoming live migration of domain', error)
        self.assertIn('no Korora-approved migration', error)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.domain.state()[0])

    def test_unencrypted_stream_is_refused(self):
        flags = libvirt_migration.migration_flags(
            real_migration.NOVA_FLAGS & ~libvirt.VIR_MIGRATE_TLS, False)
        self.assertEqual(libvirt_migration.UNENCRYPTED_STREAM,
                         libvirt_migration.stream_refusal(flags, False))
        self.assertIsNone(libvirt_migration.stream_refusal(
            flags | libvirt.VIR_MIGRATE_TLS, False))
