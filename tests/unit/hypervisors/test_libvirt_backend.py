"""The libvirt backend against real libvirt: its test driver, loaded with
our own KVM and Xen domain definitions (test:///ABS/PATH/node.xml), and
swtpm state files written by a real swtpm.

libvirt's test driver needs no daemon and no hypervisor; it keeps a
domain's XML as libvirt's own parser normalised it, which is what
XMLDesc returns on a real host too. No libvirt call is mocked.
"""

import os

import fixtures
import libvirt

from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.hypervisors import domain_xml
from korora_nova.hypervisors import libvirt_backend
from tests import base as test_base
from tests.unit.hypervisors import shared

SECRET = shared.SECRET_UUID
PASSPHRASE = shared.PASSPHRASE

KVM_VTPM = '6c3e9a1e-0d51-4c1f-a7a4-1b9d1e0f6a01'
KVM_TPM12 = '6c3e9a1e-0d51-4c1f-a7a4-1b9d1e0f6a02'
KVM_PASSTHROUGH = '6c3e9a1e-0d51-4c1f-a7a4-1b9d1e0f6a03'
KVM_EXTERNAL = '6c3e9a1e-0d51-4c1f-a7a4-1b9d1e0f6a04'
KVM_NO_TPM = '6c3e9a1e-0d51-4c1f-a7a4-1b9d1e0f6a05'
XEN_SWTPM = '7d4f0b2f-1e62-4d20-b8b5-2c0e2f107b01'
XEN_METADATA = '7d4f0b2f-1e62-4d20-b8b5-2c0e2f107b02'
XEN_VTPM_STUBDOM = '7d4f0b2f-1e62-4d20-b8b5-2c0e2f107b03'
XEN_VTPMMGR = '7d4f0b2f-1e62-4d20-b8b5-2c0e2f107b04'
XEN_XL = '7d4f0b2f-1e62-4d20-b8b5-2c0e2f107b05'
MISSING = '00000000-0000-4000-8000-000000000000'

NODE = """<node>
  <domain type='kvm'>
    <name>kvm-vtpm</name>
    <uuid>{KVM_VTPM}</uuid>
    <memory>65536</memory>
    <os>
      <type arch='x86_64' machine='q35'>hvm</type>
      <loader readonly='yes' secure='yes' type='pflash'
        >/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>
      <nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>{nvram}</nvram>
    </os>
    <features><acpi/><smm state='on'/></features>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='raw'/>
        <source file='{disk_raw}'/>
        <target dev='vda' bus='virtio'/>
      </disk>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='{disk_qcow2}'/>
        <target dev='vdb' bus='virtio'/>
      </disk>
      <disk type='file' device='cdrom'>
        <driver name='qemu' type='raw'/>
        <source file='{disk_raw}.config'/>
        <target dev='sda' bus='sata'/>
        <readonly/>
      </disk>
      <tpm model='{kvm_model}'>
        <backend type='emulator' version='2.0'>
          <encryption secret='{SECRET}'/>
        </backend>
      </tpm>
    </devices>
  </domain>
  <domain type='kvm'>
    <name>kvm-tpm12</name>
    <uuid>{KVM_TPM12}</uuid>
    <memory>65536</memory>
    <os><type arch='x86_64' machine='pc'>hvm</type></os>
    <devices>
      <tpm model='tpm-tis'><backend type='emulator' version='1.2'/></tpm>
    </devices>
  </domain>
  <domain type='kvm'>
    <name>kvm-passthrough</name>
    <uuid>{KVM_PASSTHROUGH}</uuid>
    <memory>65536</memory>
    <os><type arch='x86_64'>hvm</type></os>
    <devices>
      <tpm model='tpm-tis'>
        <backend type='passthrough'><device path='/dev/tpm0'/></backend>
      </tpm>
    </devices>
  </domain>
  <domain type='kvm'>
    <name>kvm-external</name>
    <uuid>{KVM_EXTERNAL}</uuid>
    <memory>65536</memory>
    <os><type arch='x86_64'>hvm</type></os>
    <devices>
      <tpm model='tpm-crb'>
        <backend type='external'>
          <source type='unix' mode='connect' path='/run/swtpm/ext.sock'/>
        </backend>
      </tpm>
    </devices>
  </domain>
  <domain type='kvm'>
    <name>kvm-no-tpm</name>
    <uuid>{KVM_NO_TPM}</uuid>
    <memory>65536</memory>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>
  <domain type='xen'>
    <name>xen-swtpm</name>
    <uuid>{XEN_SWTPM}</uuid>
    <memory>65536</memory>
    <os>
      <type arch='x86_64' machine='xenfv'>hvm</type>
      <loader type='rom'>/usr/lib/xen/boot/hvmloader</loader>
    </os>
    <devices>
      <tpm model='tpm-tis'>
        <backend type='emulator' version='2.0'>
          <encryption secret='{SECRET}'/>
        </backend>
      </tpm>
    </devices>
  </domain>
  <domain type='xen'>
    <name>xen-guest</name>
    <uuid>{XEN_METADATA}</uuid>
    <metadata>
      <kx:vtpm xmlns:kx='{NS}' backend='stubdom' domain='xen-guest-vtpm'/>
    </metadata>
    <memory>65536</memory>
    <os><type arch='x86_64'>xen</type><kernel>/boot/vmlinuz</kernel></os>
  </domain>
  <domain type='xen'>
    <name>xen-guest-vtpm</name>
    <uuid>{XEN_VTPM_STUBDOM}</uuid>
    <memory>8192</memory>
    <os><type arch='x86_64'>xen</type>
      <kernel>/usr/lib/xen/boot/vtpm-stubdom.gz</kernel></os>
  </domain>
  <domain type='xen'>
    <name>vtpmmgr</name>
    <uuid>{XEN_VTPMMGR}</uuid>
    <memory>131072</memory>
    <os><type arch='x86_64'>xen</type>
      <kernel>/usr/lib/xen/boot/vtpmmgr-stubdom.gz</kernel></os>
  </domain>
  <domain type='xen'>
    <name>xen-xl-guest</name>
    <uuid>{XEN_XL}</uuid>
    <memory>65536</memory>
    <os><type arch='x86_64'>xen</type><kernel>/boot/vmlinuz</kernel></os>
  </domain>
</node>
"""


class LibvirtTestCase(test_base.TestCase):

    def setUp(self):
        super().setUp()
        # libvirt's default error handler prints every error to stderr.
        libvirt.registerErrorHandler(lambda context, error: None, None)
        self.addCleanup(libvirt.registerErrorHandler, None, None)
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.swtpm_root = os.path.join(self.folder, 'swtpm')
        os.mkdir(self.swtpm_root)
        self.nvram = self.write('nvram/kvm-vtpm_VARS.fd',
                                b'\x00' * 8192 + b'UEFI variables')
        self.disk = self.write('instances/disk', b'raw disk ' * 1000)
        self.write('instances/disk.config', b'config drive')
        self.write('instances/disk.qcow2', b'QFI\xfb not really')
        self.uri = self.node()
        self.backend = libvirt_backend.LibvirtStateBackend(
            self.uri, swtpm_root=self.swtpm_root)
        self.state = shared.swtpm_state('2.0', PASSPHRASE)
        self.install_state(KVM_VTPM, self.state)
        self.install_state(XEN_SWTPM, self.state)
        self.state12 = shared.swtpm_state('1.2', None)
        self.install_state(KVM_TPM12, self.state12, version='1.2')

    def write(self, relative, data):
        path = os.path.join(self.folder, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as handle:
            handle.write(data)
        return path

    def node(self, name='node.xml', kvm_model='tpm-crb'):
        text = NODE.format(
            nvram=self.nvram, disk_raw=self.disk,
            disk_qcow2=os.path.join(self.folder, 'instances/disk.qcow2'),
            kvm_model=kvm_model, SECRET=SECRET, NS=domain_xml.XEN_VTPM_NS,
            **{key: value for key, value in globals().items()
               if key.startswith(('KVM_', 'XEN_'))})
        path = self.write(name, text.encode('utf-8'))
        return 'test://' + path

    def install_state(self, uuid, data, version='2.0'):
        folder = os.path.join(self.swtpm_root, uuid,
                              'tpm2' if version == '2.0' else 'tpm1.2')
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, shared.state_file_name(version))
        with open(path, 'wb') as handle:
            handle.write(data)
        return path


class TestTestDriver(LibvirtTestCase):

    def test_custom_node_xml_loads_kvm_and_xen_domains(self):
        connection = libvirt.openReadOnly(self.uri)
        self.addCleanup(connection.close)
        self.assertEqual('TEST', connection.getType())
        # libvirt 9.0.0 on Debian 12 when this was written.
        self.assertGreaterEqual(connection.getLibVersion(), 9000000)
        types = sorted(domain_xml.facts_from_xml(
            domain.XMLDesc(0)).domain_type
            for domain in connection.listAllDomains())
        self.assertEqual(['kvm'] * 5 + ['xen'] * 5, types)


class TestKVM(LibvirtTestCase):

    def test_measurement(self):
        measurement = self.backend.measure(KVM_VTPM, vtpm_secret=PASSPHRASE)
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security'],
                         list(measurement))
        plaintext = libvirt_backend.swtpm_state_plaintext(self.state,
                                                          PASSPHRASE)
        self.assertEqual(base.sha256_hex(plaintext),
                         measurement['vtpm-state'])
        with open(self.nvram, 'rb') as handle:
            self.assertEqual(base.sha256_hex(handle.read()),
                             measurement['nvram'])
        self.assertEqual(self.backend.describe(KVM_VTPM).security_digest(),
                         measurement['domain-security'])

    def test_describe(self):
        facts = self.backend.describe(KVM_VTPM.upper())
        self.assertEqual(('tpm-crb', 'emulator', '2.0', SECRET),
                         (facts.vtpm.model, facts.vtpm.backend,
                          facts.vtpm.version, facts.vtpm.secret_uuid))
        self.assertEqual(('efi', 'yes', 'on'),
                         (facts.firmware.type, facts.firmware.loader_secure,
                          facts.firmware.smm))
        self.assertEqual(self.nvram, facts.firmware.nvram_path)

    def test_secret_from_a_provider(self):
        asked = []

        def provider(secret_uuid):
            asked.append(secret_uuid)
            return PASSPHRASE.decode('ascii')

        backend = libvirt_backend.LibvirtStateBackend(
            self.uri, swtpm_root=self.swtpm_root, secret_provider=provider)
        self.assertEqual(self.backend.measure(KVM_VTPM,
                                              vtpm_secret=PASSPHRASE),
                         backend.measure(KVM_VTPM))
        self.assertEqual([SECRET], asked)

    def test_encrypted_state_without_the_secret(self):
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM)
        # No item: a destination without the secret has found nothing
        # about the state, and must not quarantine for it.
        self.assertIsNone(error.item)
        self.assertIn('needs the value of the vTPM secret', str(error))

        def broken(secret_uuid):
            raise RuntimeError('key manager unreachable')

        backend = libvirt_backend.LibvirtStateBackend(
            self.uri, swtpm_root=self.swtpm_root, secret_provider=broken)
        error = self.assertRaises(
            exception.InstanceStateError, backend.measure,
            KVM_VTPM)
        self.assertIn('key manager unreachable', str(error))
        self.assertIsNone(error.item)

    def test_reencrypted_state_measures_the_same(self):
        # What the destination's swtpm writes: the same TPM state under a
        # fresh IV. The bytes differ, the measurement does not, and a
        # real swtpm loads the file.
        before = self.backend.measure(KVM_VTPM, vtpm_secret=PASSPHRASE)
        again = shared.reencrypt(self.state)
        self.assertNotEqual(self.state, again)
        self.assertTrue(shared.swtpm_accepts(again))
        self.install_state(KVM_VTPM, again)
        self.assertEqual([], base.compare(
            before, self.backend.measure(KVM_VTPM, vtpm_secret=PASSPHRASE)))

    def test_flipped_byte_in_encrypted_state(self):
        tampered = shared.flip_byte(self.state, len(self.state) // 2)
        self.assertFalse(shared.swtpm_accepts(tampered))
        self.install_state(KVM_VTPM, tampered)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  vtpm_secret=PASSPHRASE)
        self.assertEqual('vtpm-state', error.item)
        self.assertIn('HMAC', str(error))

    def test_wrong_secret(self):
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  vtpm_secret=b'another secret')
        self.assertIn('another secret', str(error))

    def test_flipped_byte_in_plain_tpm12_state(self):
        before = self.backend.measure(KVM_TPM12)
        self.assertEqual(['vtpm-state', 'domain-security'], list(before))
        self.install_state(KVM_TPM12, shared.flip_byte(
            self.state12, len(self.state12) - 1), version='1.2')
        self.assertEqual(['vtpm-state'], base.compare(
            before, self.backend.measure(KVM_TPM12)))

    def test_altered_nvram(self):
        before = self.backend.measure(KVM_VTPM, vtpm_secret=PASSPHRASE)
        with open(self.nvram, 'r+b') as handle:
            handle.seek(100)
            handle.write(b'\x01')
        self.assertEqual(['nvram'], base.compare(
            before, self.backend.measure(KVM_VTPM, vtpm_secret=PASSPHRASE)))

    def test_changed_tpm_model(self):
        before = self.backend.measure(KVM_VTPM, vtpm_secret=PASSPHRASE)
        changed = libvirt_backend.LibvirtStateBackend(
            self.node('changed.xml', kvm_model='tpm-tis'),
            swtpm_root=self.swtpm_root)
        self.assertEqual(['domain-security'], base.compare(
            before, changed.measure(KVM_VTPM, vtpm_secret=PASSPHRASE)))

    def test_block_migration_measures_raw_disks(self):
        measurement = self.backend.measure(
            KVM_VTPM, block_migration=True, disk_targets=['vda'],
            vtpm_secret=PASSPHRASE)
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security',
                          'disk:vda'], list(measurement))
        with open(self.disk, 'rb') as handle:
            self.assertEqual(base.sha256_hex(handle.read()),
                             measurement['disk:vda'])
        # vdb is qcow2: its bytes would differ after any block migration.
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  block_migration=True,
                                  vtpm_secret=PASSPHRASE)
        self.assertEqual('disk:vdb', error.item)
        self.assertIn('qcow2', str(error))

    def test_no_tpm_has_no_vtpm_item(self):
        self.assertEqual(['domain-security'],
                         list(self.backend.measure(KVM_NO_TPM)))

    def test_passthrough_tpm_is_refused(self):
        error = self.assertRaises(exception.MigrationRefused,
                                  self.backend.measure, KVM_PASSTHROUGH)
        self.assertIn('passthrough TPM', error.reason)
        self.assertIn('/dev/tpm0', error.reason)
        self.assertRaises(exception.MigrationRefused,
                          self.backend.check_migratable, KVM_PASSTHROUGH)

    def test_external_swtpm_is_refused(self):
        error = self.assertRaises(exception.MigrationRefused,
                                  self.backend.measure, KVM_EXTERNAL)
        self.assertIn('externally managed', error.reason)


class TestXen(LibvirtTestCase):

    def test_swtpm_backed_vtpm_is_measured(self):
        measurement = self.backend.measure(XEN_SWTPM, vtpm_secret=PASSPHRASE)
        self.assertEqual(['vtpm-state', 'domain-security'], list(measurement))
        facts = self.backend.describe(XEN_SWTPM)
        self.assertEqual(('xen', 'bios'), (facts.domain_type,
                                           facts.firmware.type))

    def test_stub_domain_vtpm_declared_in_metadata_is_refused(self):
        error = self.assertRaises(exception.MigrationRefused,
                                  self.backend.measure, XEN_METADATA)
        self.assertIn('Xen stub-domain vTPM', error.reason)
        self.assertIn('xen-guest-vtpm', error.reason)
        self.assertIn('TPM 1.2', error.reason)
        self.assertIn('xen-vtpmmgr(7)', error.reason)
        self.assertIn('does not yet support migration', error.reason)

    def test_stub_domains_themselves_are_refused(self):
        for uuid, role in ((XEN_VTPM_STUBDOM, 'vTPM stub domain'),
                           (XEN_VTPMMGR, 'vTPM manager domain')):
            error = self.assertRaises(exception.MigrationRefused,
                                      self.backend.check_migratable, uuid)
            self.assertIn(role, error.reason)
            self.assertIn('does not yet support migration', error.reason)

    def test_stub_domain_vtpm_in_xl_configuration_is_refused(self):
        configs = os.path.join(self.folder, 'xen')
        os.mkdir(configs)
        with open(os.path.join(configs, 'xen-xl-guest.cfg'), 'w') as handle:
            handle.write('name = "xen-xl-guest"\n'
                         'vtpm = ["backend=xen-xl-guest-vtpm"]\n')
        # Without the xl configuration, libvirt shows nothing of it.
        self.assertIsNone(self.backend.describe(XEN_XL).refusal)
        xen = libvirt_backend.XenStateBackend(
            self.uri, swtpm_root=self.swtpm_root, xl_config_dir=configs)
        error = self.assertRaises(exception.MigrationRefused, xen.measure,
                                  XEN_XL)
        self.assertIn('xl configuration', error.reason)
        self.assertIn('xen-xl-guest-vtpm', error.reason)
        self.assertIn('does not yet support migration', error.reason)

    def test_running_vtpmmgr_domain_is_listed(self):
        # Not vtpm-stubdom, not the guests: only the vTPM manager domain,
        # which the vTPM manager's self-measurement checks.
        found = libvirt_backend.xen_vtpmmgr_domains(self.uri)
        self.assertEqual(
            [('vtpmmgr', XEN_VTPMMGR,
              '/usr/lib/xen/boot/vtpmmgr-stubdom.gz')],
            [(facts.name, facts.uuid, facts.kernel) for facts in found])
        error = self.assertRaises(
            exception.InstanceStateError, libvirt_backend.xen_vtpmmgr_domains,
            'test:///nonexistent/node.xml')
        self.assertIn('cannot reach libvirt at test:///nonexistent/node.xml',
                      str(error))

    def test_xen_backend_defaults(self):
        xen = libvirt_backend.XenStateBackend()
        self.assertEqual(('xen:///system', '/var/lib/libvirt/swtpm'),
                         (xen.uri, xen.swtpm_root))


class TestBadInput(LibvirtTestCase):

    def test_unknown_domain(self):
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, MISSING)
        self.assertIn('has no domain', str(error))

    def test_not_a_uuid(self):
        for value in ('kvm-vtpm', '../../etc/passwd', ''):
            self.assertRaises(
                exception.InstanceStateError, self.backend.measure,
                value)

    def test_unreachable_libvirt(self):
        backend = libvirt_backend.LibvirtStateBackend(
            'test://' + os.path.join(self.folder, 'nowhere.xml'))
        error = self.assertRaises(
            exception.InstanceStateError, backend.describe,
            KVM_VTPM)
        self.assertIn('cannot reach libvirt', str(error))

    def test_missing_state_file(self):
        os.unlink(os.path.join(self.swtpm_root, KVM_VTPM, 'tpm2',
                               'tpm2-00.permall'))
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  vtpm_secret=PASSPHRASE)
        self.assertEqual('vtpm-state', error.item)
        self.assertIn('missing', str(error))

    def test_symlinked_state_file_is_refused(self):
        # A symlink lets whoever wrote it choose what gets measured (a
        # good copy kept aside while the real state is altered).
        path = os.path.join(self.swtpm_root, KVM_VTPM, 'tpm2',
                            'tpm2-00.permall')
        good_copy = self.write('good-copy', self.state)
        os.unlink(path)
        os.symlink(good_copy, path)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  vtpm_secret=PASSPHRASE)
        self.assertIn('symbolic link', str(error))

    def test_symlinked_state_folder_is_refused(self):
        real = os.path.join(self.folder, 'elsewhere')
        os.rename(os.path.join(self.swtpm_root, KVM_VTPM), real)
        os.symlink(real, os.path.join(self.swtpm_root, KVM_VTPM))
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  vtpm_secret=PASSPHRASE)
        self.assertIn('symbolic link', str(error))

    def test_symlinked_nvram_is_refused(self):
        good_copy = self.write('nvram-copy', b'anything')
        os.unlink(self.nvram)
        os.symlink(good_copy, self.nvram)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  vtpm_secret=PASSPHRASE)
        self.assertEqual('nvram', error.item)

    def test_oversized_state_file_is_refused(self):
        path = self.install_state(KVM_VTPM, b'')
        os.truncate(path, base.MAX_VTPM_STATE_BYTES + 1)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  vtpm_secret=PASSPHRASE)
        self.assertIn('more than the', str(error))

    def test_state_file_that_is_not_swtpm_state(self):
        for data in (b'', b'garbage', self.state[:-1], self.state + b'x',
                     b'\x01\x01\x00\x0a' + self.state[4:]):
            self.install_state(KVM_VTPM, data)
            error = self.assertRaises(exception.InstanceStateError,
                                      self.backend.measure, KVM_VTPM,
                                      vtpm_secret=PASSPHRASE)
            self.assertEqual('vtpm-state', error.item)

    def test_fifo_state_file_is_refused(self):
        path = os.path.join(self.swtpm_root, KVM_VTPM, 'tpm2',
                            'tpm2-00.permall')
        os.unlink(path)
        os.mkfifo(path)
        error = self.assertRaises(exception.InstanceStateError,
                                  self.backend.measure, KVM_VTPM,
                                  vtpm_secret=PASSPHRASE)
        self.assertIn('not a regular file', str(error))
