"""Kororā and a real libvirt live migration, without Nova's services.

Two libvirt hosts on this machine (two libvirtd daemons, each in a mount
namespace of its own), KVM where /dev/kvm works and TCG otherwise; each
host with its own swtpm as platform TPM and its own vTPM manager on a
real RabbitMQ broker; the verifier's database in SQLite;
korora-libvirt-hook in each host's qemu.d (tests.
real_migration, which benchmarks/real_migration.py uses too).

Here: Kororā's steps by themselves around libvirt's migration call (the
functions the hooked driver calls, in its order), plain ``virsh
migrate`` meeting the libvirt hook, and what the hooked LibvirtDriver
does to the source's copy. The same migrations through Nova's own
libvirt driver methods: test_nova_libvirt_driver.
"""

import os

import libvirt
from nova import exception as nova_exception
from nova import objects
from nova.virt.libvirt import driver as libvirt_driver

from korora_nova.hooks import driver as hooks_driver
from korora_nova.migration import records
from korora_nova.migration import states
from tests.fixtures import real_migration

SOURCE, DEST = 'kvm-a', 'kvm-b'
PASSPHRASE = 'vtpm-passphrase-7d1e'
INSTANCE_ID = 7


class RealHypervisorTestCase(real_migration.RealMigrationTestCase):

    # Named as Nova names instance INSTANCE_ID (instance-%08x).
    GUEST_NAME = 'instance-%08x' % INSTANCE_ID
    PASSPHRASE = PASSPHRASE

    def setUp(self):
        super().setUp()
        self.managers = self.bed.managers
        self.domain = self.hosts[SOURCE].domain(self.guest)

    def prepare(self):
        return self.bed.prepare(self.guest, SOURCE, DEST)


class TestRealLiveMigration(RealHypervisorTestCase):

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


class TestNovaCleanupKeepsTheSourceCopy(RealHypervisorTestCase):
    """Nova's libvirt driver cleans up the source (driver.cleanup, which
    undefines the domain without VIR_DOMAIN_UNDEFINE_KEEP_TPM when the
    instance's storage is not shared) before it asks the destination to
    finish, and so before Kororā's check there. The hooked LibvirtDriver,
    connected to the real source host, keeps the domain, its vTPM state
    and NVRAM until the commit (test_nova_libvirt_driver shows it in a
    whole migration)."""

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
        # The verifier opened no record for the untrusted destination.
        self.assertEqual([], records.list())
        # virsh migrate (no Nova, no Kororā record) meets the libvirt
        # hook on the destination, which refuses with Kororā's reason.
        error = self.hosts[SOURCE].virsh_migrate(self.guest,
                                                 self.hosts[DEST], tls=True)
        self.assertIsNotNone(error)
        self.assertIn('Korora: incoming live migration of domain', error)
        self.assertIn('no Korora-approved migration', error)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.domain.state()[0])
