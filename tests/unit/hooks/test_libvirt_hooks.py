"""Kororā's changes to Nova's libvirt live migration (flags, stream).

Nova's real LibvirtDriver class is hooked; nothing here connects to a
hypervisor (the flags are worked out before any connection).
"""

import libvirt
from nova import exception as nova_exception
from nova import objects
from nova.objects import migrate_data
from nova.virt.libvirt import driver as libvirt_driver

from korora_nova.hooks import driver as hooks_driver
from tests import base

INSTANCE = '3c1f7a52-8d2e-4b6a-9f0e-5a7b6c8d9e01'


class TestLibvirtHooks(base.TestCase):

    def setUp(self):
        super().setUp()
        objects.register_all()
        self.driver_class = hooks_driver.hooked(libvirt_driver.LibvirtDriver)

    def driver(self, native_tls=False):
        self.config.config(group='libvirt',
                           live_migration_with_native_tls=native_tls)
        driver = self.driver_class(None, read_only=True)
        driver._parse_migration_flags()
        return driver

    def test_libvirt_gets_the_libvirt_hooks(self):
        self.assertTrue(issubclass(self.driver_class,
                                   hooks_driver.LibvirtLiveMigrationHooks))
        self.assertEqual('KororaLibvirtDriver', self.driver_class.__name__)

    def test_the_source_domain_stays_defined(self):
        driver = self.driver()
        for flags in (driver._live_migration_flags,
                      driver._block_migration_flags):
            self.assertFalse(flags & libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
            self.assertTrue(flags & libvirt.VIR_MIGRATE_LIVE)
            self.assertTrue(flags & libvirt.VIR_MIGRATE_PERSIST_DEST)
            self.assertFalse(flags & libvirt.VIR_MIGRATE_PAUSED)

    def test_verify_before_resume_arrives_paused(self):
        self.flags(verify_before_resume=True)
        driver = self.driver()
        self.assertTrue(driver._live_migration_flags &
                        libvirt.VIR_MIGRATE_PAUSED)
        self.assertTrue(driver._block_migration_flags &
                        libvirt.VIR_MIGRATE_PAUSED)

    def check_stream(self, driver, block_migration=False):
        instance = objects.Instance(uuid=INSTANCE)
        data = migrate_data.LibvirtLiveMigrateData(
            block_migration=block_migration)
        driver._korora_check_stream(instance, data)

    def test_unencrypted_stream_is_refused_with_the_way_out(self):
        driver = self.driver(native_tls=False)
        for block in (False, True):
            error = self.assertRaises(
                nova_exception.MigrationPreCheckError, self.check_stream,
                driver, block)
            self.assertIn('Korora: the migration stream would cross the '
                          'network unencrypted', str(error))
            self.assertIn('live_migration_with_native_tls = true',
                          str(error))

    def test_native_tls_stream_passes(self):
        driver = self.driver(native_tls=True)
        self.assertTrue(driver._live_migration_flags &
                        libvirt.VIR_MIGRATE_TLS)
        self.check_stream(driver)
        self.check_stream(driver, block_migration=True)

    def test_operator_may_accept_an_unencrypted_stream(self):
        self.flags(allow_unencrypted_migration_stream=True)
        self.check_stream(self.driver(native_tls=False))
