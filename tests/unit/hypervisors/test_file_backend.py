"""The file backend: fake hosts' folders, the fake live migration, and
tampering in flight."""

import os

import fixtures

from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.hypervisors import domain_xml
from korora_nova.hypervisors import file_backend
from tests import base as test_base
from tests.unit.hypervisors import shared

UUID = '8a9c2f56-1d3e-4b7a-9c0e-2f4d6b8a0c1e'
SECRET = shared.SECRET_UUID


class FileBackendTestCase(test_base.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.source = file_backend.FileStateBackend(self.root, 'compute-1')
        self.destination = file_backend.FileStateBackend(self.root,
                                                         'compute-2')
        self.state = shared.swtpm_state()

    def create(self, **options):
        options.setdefault('vtpm_state', self.state)
        options.setdefault('nvram', b'\x00' * 4096 + b'EFI variables')
        options.setdefault('secret_uuid', SECRET)
        options.setdefault('secure_boot', True)
        return self.source.create_instance(UUID, **options)

    def migrate(self, in_flight=None, **measure):
        expected = self.source.measure(UUID, **measure)
        self.source.copy_instance(UUID, self.destination,
                                  in_flight=in_flight)
        return base.compare(expected, self.destination.measure(UUID,
                                                               **measure))


class TestMeasure(FileBackendTestCase):

    def test_items_in_order(self):
        self.create(disks={'vdb': b'b' * 100, 'vda': b'a' * 100})
        measurement = self.source.measure(UUID, block_migration=True)
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security',
                          'disk:vda', 'disk:vdb'], list(measurement))
        self.assertEqual(base.sha256_hex(self.state),
                         measurement['vtpm-state'])
        self.assertEqual(base.sha256_hex(b'a' * 100),
                         measurement['disk:vda'])
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security'],
                         list(self.source.measure(UUID)))

    def test_no_nvram_item_without_nvram(self):
        self.create(nvram=None, secure_boot=False)
        self.assertEqual(['vtpm-state', 'domain-security'],
                         list(self.source.measure(UUID)))

    def test_describe_gives_the_security_facts(self):
        self.create()
        facts = self.source.describe(UUID)
        self.assertEqual('tpm-crb', facts.vtpm.model)
        self.assertEqual(SECRET, facts.vtpm.secret_uuid)
        self.assertEqual('yes', facts.firmware.loader_secure)
        self.assertEqual(facts.security_digest(),
                         self.source.measure(UUID)['domain-security'])

    def test_passthrough_tpm_is_refused(self):
        self.create(tpm_backend='passthrough')
        error = self.assertRaises(exception.MigrationRefused,
                                  self.source.measure, UUID)
        self.assertIn('passthrough TPM', error.reason)
        self.assertRaises(exception.MigrationRefused,
                          self.source.check_migratable, UUID)

    def test_xen_stub_domain_vtpm_is_refused(self):
        self.create(domain_type='xen', tpm_backend=None, metadata=(
            "<kx:vtpm xmlns:kx='%s' backend='stubdom' domain='dom-vtpm'/>"
            % domain_xml.XEN_VTPM_NS))
        error = self.assertRaises(exception.MigrationRefused,
                                  self.source.measure, UUID)
        self.assertIn('xen-vtpmmgr(7)', str(error))
        self.assertIn('does not yet support migration', str(error))


class TestMigration(FileBackendTestCase):

    def test_untouched_migration_matches(self):
        self.create(disks={'vda': b'disk' * 1000})
        self.assertEqual([], self.migrate(block_migration=True))
        self.assertTrue(self.source.has_instance(UUID))
        self.source.remove_instance(UUID)
        self.assertFalse(self.source.has_instance(UUID))
        self.assertEqual([UUID], self.destination.list_instances())

    def test_flipped_byte_in_the_vtpm_state(self):
        self.create()

        def tamper(name, data):
            if name == file_backend.STATE_FILE:
                return shared.flip_byte(data, len(data) // 2)
            return data

        self.assertEqual(['vtpm-state'], self.migrate(in_flight=tamper))

    def test_changed_tpm_model_in_the_domain_definition(self):
        self.create()

        def tamper(name, data):
            if name == file_backend.DOMAIN_FILE:
                return data.replace(b'tpm-crb', b'tpm-tis')
            return data

        self.assertEqual(['domain-security'], self.migrate(in_flight=tamper))

    def test_secure_boot_switched_off_in_flight(self):
        self.create()

        def tamper(name, data):
            return data.replace(b'secure="yes"', b'secure="no"')

        self.assertEqual(['domain-security'], self.migrate(in_flight=tamper))

    def test_altered_nvram(self):
        self.create()

        def tamper(name, data):
            if name == file_backend.NVRAM_FILE:
                return data + b'\x00'
            return data

        self.assertEqual(['nvram'], self.migrate(in_flight=tamper))

    def test_tampering_at_the_destination_after_the_copy(self):
        self.create(disks={'vda': b'disk'})
        expected = self.source.measure(UUID, block_migration=True)
        self.source.copy_instance(UUID, self.destination)
        path = self.destination.path(UUID, file_backend.NVRAM_FILE)
        with open(path, 'r+b') as handle:
            handle.write(b'\x01')
        with open(self.destination.path(UUID, 'disk.vda'), 'ab') as handle:
            handle.write(b'!')
        self.assertEqual(['nvram', 'disk:vda'], base.compare(
            expected, self.destination.measure(UUID, block_migration=True)))

    def test_dropped_state_file_is_an_error_naming_the_item(self):
        self.create()

        def drop(name, data):
            return None if name == file_backend.STATE_FILE else data

        self.source.copy_instance(UUID, self.destination, in_flight=drop)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.destination.measure, UUID)
        self.assertEqual('vtpm-state', error.item)
        self.assertIn('missing', str(error))

    def test_dropped_nvram_element_removes_the_item(self):
        self.create()

        def tamper(name, data):
            if name == file_backend.DOMAIN_FILE:
                start = data.index(b'<nvram>')
                end = data.index(b'</nvram>') + len(b'</nvram>')
                return data[:start] + data[end:]
            return data

        self.assertEqual(['nvram'], self.migrate(in_flight=tamper))

    def test_cannot_overwrite_an_instance_at_the_destination(self):
        self.create()
        self.source.copy_instance(UUID, self.destination)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.source.copy_instance, UUID,
                                  self.destination)
        self.assertIn('already exists', str(error))
        self.assertRaises(exception.InstanceStateError,
                          self.source.copy_instance, UUID, self.source)

    def test_unknown_files_do_not_cross(self):
        folder = self.create()
        with open(os.path.join(folder, 'notes.txt'), 'w') as handle:
            handle.write('not an instance file')
        destination = self.source.copy_instance(UUID, self.destination)
        self.assertEqual(['domain.xml', 'nvram.fd', 'tpm2-00.permall'],
                         sorted(os.listdir(destination)))


class TestBadInput(FileBackendTestCase):

    def test_unknown_instance(self):
        error = self.assertRaises(exception.InstanceStateError,
                                  self.source.measure, UUID)
        self.assertIn('missing', str(error))
        self.assertRaises(exception.InstanceStateError,
                          self.source.copy_instance, UUID, self.destination)

    def test_bad_names(self):
        for host in ('..', '../x', 'a/b', '', '.hidden', None):
            self.assertRaises(exception.InstanceStateError,
                              file_backend.FileStateBackend, self.root, host)
        self.assertRaises(exception.InstanceStateError, self.source.measure,
                          '../../etc')
        self.assertRaises(exception.InstanceStateError, self.source.path, UUID,
                          '../domain.xml')
        self.assertRaises(exception.InstanceStateError, self.create,
                          disks={'../x': b''})

    def test_malformed_and_unsafe_domain_xml(self):
        for text in ('<domain', '<!DOCTYPE d [<!ENTITY e "x">]>'
                     '<domain type="kvm"/>',
                     ' ' * (domain_xml.MAX_XML_BYTES + 1)):
            self.source.remove_instance(UUID)
            self.create(domain_xml_text=text)
            error = self.assertRaises(exception.InstanceStateError,
                                      self.source.measure, UUID)
            self.assertEqual('domain-security', error.item)

    def test_domain_xml_naming_another_instance(self):
        self.create(domain_xml_text=file_backend.make_domain_xml(
            '00000000-0000-0000-0000-000000000001'))
        error = self.assertRaises(exception.InstanceStateError,
                                  self.source.measure, UUID)
        self.assertIn('names instance', str(error))

    def test_symlinked_state_file_is_refused(self):
        self.create()
        elsewhere = os.path.join(self.root, 'good-copy')
        path = self.source.path(UUID, file_backend.STATE_FILE)
        os.rename(path, elsewhere)
        os.symlink(elsewhere, path)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.source.measure, UUID)
        self.assertIn('symbolic link', str(error))
        self.assertEqual('vtpm-state', error.item)
        # Nor does the fake migration carry it.
        self.assertRaises(exception.InstanceStateError,
                          self.source.copy_instance, UUID, self.destination)

    def test_oversized_state_is_refused(self):
        self.create()
        with open(self.source.path(UUID, file_backend.STATE_FILE),
                  'r+b') as handle:
            handle.truncate(base.MAX_VTPM_STATE_BYTES + 1)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.source.measure, UUID)
        self.assertIn('more than the', str(error))

    def test_unknown_disk_target(self):
        self.create(disks={'vda': b'x'})
        error = self.assertRaises(exception.InstanceStateError,
                                  self.source.measure, UUID,
                                  block_migration=True,
                                  disk_targets=['vdz'])
        self.assertIn('no disk', str(error))
