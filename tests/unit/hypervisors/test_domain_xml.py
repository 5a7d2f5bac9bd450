"""Domain XML: safe parsing, security facts, refusals."""

from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.hypervisors import domain_xml
from tests import base as test_base

UUID = '11111111-2222-3333-4444-555555555555'
SECRET = '6dd3e4a5-1d76-44ce-961f-f119f5aad935'

KVM = """<domain type='kvm'>
  <name>instance-00000001</name>
  <uuid>%(uuid)s</uuid>
  <os firmware='efi'>
    <type arch='x86_64' machine='q35'>hvm</type>
    <firmware>
      <feature enabled='yes' name='secure-boot'/>
      <feature enabled='yes' name='enrolled-keys'/>
    </firmware>
    <loader readonly='yes' secure='yes' type='pflash'
      >/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'
      >/var/lib/libvirt/qemu/nvram/i_VARS.fd</nvram>
  </os>
  <features><acpi/><smm state='on'/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/nova/instances/%(uuid)s/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/var/lib/nova/instances/%(uuid)s/disk.config'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <tpm model='%(model)s'>
      <backend type='emulator' version='2.0'>
        <encryption secret='%(secret)s'/>
        <active_pcr_banks><sha384/><sha256/></active_pcr_banks>
      </backend>
    </tpm>
  </devices>
</domain>
"""


def kvm(model='tpm-crb', secret=SECRET):
    return KVM % {'uuid': UUID, 'model': model, 'secret': secret}


def xen_pv(kernel='/boot/vmlinuz', metadata=''):
    return ("<domain type='xen'><name>guest</name><uuid>%s</uuid>"
            "<metadata>%s</metadata>"
            "<os><type arch='x86_64'>linux</type><kernel>%s</kernel></os>"
            "<devices/></domain>" % (UUID, metadata, kernel))


class TestParsing(test_base.TestCase):

    def test_refuses_oversized_xml(self):
        xml = kvm().replace('<devices>', '<devices><!--%s-->'
                            % ('x' * domain_xml.MAX_XML_BYTES))
        error = self.assertRaises(exception.DomainXMLError,
                                  domain_xml.facts_from_xml, xml)
        self.assertIn('refused: at most', str(error))
        self.assertEqual(base.DOMAIN_SECURITY, error.item)

    def test_refuses_malformed_xml(self):
        for xml in ('<domain type="kvm"><name>x</domain>', 'not xml',
                    '', '   ', b'\xff\xfe<', '<domain type="kvm">',
                    '<x:domain type="kvm"/>', 42):
            error = self.assertRaises(exception.InstanceStateError,
                                      domain_xml.facts_from_xml, xml)
            self.assertNotIn('Traceback', str(error))

    def test_refuses_a_doctype_even_without_entities(self):
        xml = '<!DOCTYPE domain>' + kvm()
        error = self.assertRaises(exception.DomainXMLError,
                                  domain_xml.parse, xml)
        self.assertIn('DOCTYPE', str(error))

    def test_refuses_entities(self):
        laughs = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">'
                  '<!ENTITY b "&a;&a;&a;&a;">]><domain type="kvm">'
                  '<name>&b;</name></domain>')
        external = ('<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                    '<domain type="kvm"><name>&e;</name></domain>')
        for xml in (laughs, external):
            self.assertRaises(exception.DomainXMLError, domain_xml.parse,
                              xml)
        # An entity reference with no declaration is merely malformed.
        error = self.assertRaises(exception.DomainXMLError,
                                  domain_xml.parse,
                                  '<domain type="kvm"><name>&e;</name>'
                                  '</domain>')
        self.assertIn('malformed', str(error))

    def test_refuses_what_is_not_a_domain(self):
        error = self.assertRaises(exception.DomainXMLError,
                                  domain_xml.parse, '<network/>')
        self.assertIn('<network>', str(error))
        self.assertRaises(exception.DomainXMLError,
                          domain_xml.facts_from_xml, '<domain/>')


class TestFacts(test_base.TestCase):

    def test_emulated_vtpm_and_secure_boot(self):
        facts = domain_xml.facts_from_xml(kvm())
        self.assertEqual('kvm', facts.domain_type)
        self.assertEqual(UUID, facts.uuid)
        tpm = facts.vtpm
        self.assertEqual(('tpm-crb', 'emulator', '2.0', SECRET,
                          ('sha256', 'sha384')),
                         (tpm.model, tpm.backend, tpm.version,
                          tpm.secret_uuid, tpm.pcr_banks))
        firmware = facts.firmware
        self.assertEqual(('efi', 'pflash', 'yes', 'yes', 'yes', 'on'),
                         (firmware.type, firmware.loader_type,
                          firmware.loader_secure, firmware.secure_boot,
                          firmware.enrolled_keys, firmware.smm))
        self.assertTrue(firmware.has_nvram)
        self.assertEqual('/var/lib/libvirt/qemu/nvram/i_VARS.fd',
                         firmware.nvram_path)
        self.assertIsNone(facts.refusal)
        self.assertEqual(['vda', 'sda'], [d.target for d in facts.disks])
        self.assertTrue(facts.disks[1].readonly)
        self.assertEqual(['vda'], [d.target for d in
                                   base.select_disks(facts)])

    def test_to_dict_is_plain_data(self):
        described = domain_xml.facts_from_xml(kvm()).to_dict()
        self.assertEqual('tpm-crb', described['tpms'][0]['model'])
        self.assertEqual('yes', described['firmware']['loader_secure'])

    def test_security_digest_is_canonical(self):
        one = domain_xml.facts_from_xml(kvm())
        # Attribute order, quoting, whitespace, secret case and the parts
        # that are not security-relevant do not count.
        reshaped = kvm(secret=SECRET.upper()).replace(
            "<tpm model='tpm-crb'>", '<tpm  model="tpm-crb" >').replace(
            '<name>instance-00000001</name>', '<name>renamed</name>').replace(
            "<acpi/>", '')
        other = domain_xml.facts_from_xml(reshaped)
        self.assertEqual(one.security_digest(), other.security_digest())

    def test_security_digest_follows_each_security_fact(self):
        reference = domain_xml.facts_from_xml(kvm()).security_digest()
        changes = [
            ("model='tpm-crb'", "model='tpm-tis'"),
            ("version='2.0'", "version='1.2'"),
            (SECRET, '00000000-1d76-44ce-961f-f119f5aad935'),
            ("<encryption secret='%s'/>" % SECRET, ''),
            ("secure='yes'", "secure='no'"),
            ("<feature enabled='yes' name='secure-boot'/>",
             "<feature enabled='no' name='secure-boot'/>"),
            ("firmware='efi'", "firmware='bios'"),
            ("<smm state='on'/>", ''),
            ("<sha384/>", ''),
            ("<domain type='kvm'>", "<domain type='qemu'>"),
        ]
        for old, new in changes:
            changed = kvm().replace(old, new)
            self.assertNotEqual(changed, kvm(), old)
            self.assertNotEqual(
                reference,
                domain_xml.facts_from_xml(changed).security_digest(), old)

    def test_firmware_type_without_autoselection(self):
        bios = domain_xml.facts_from_xml(
            "<domain type='kvm'><uuid>%s</uuid><os><type>hvm</type></os>"
            "</domain>" % UUID)
        self.assertEqual('bios', bios.firmware.type)
        self.assertFalse(bios.firmware.has_nvram)
        ovmf = domain_xml.facts_from_xml(
            "<domain type='xen'><uuid>%s</uuid><os><type>hvm</type>"
            "<loader type='rom'>/usr/lib/xen/boot/ovmf.bin</loader></os>"
            "</domain>" % UUID)
        self.assertEqual('efi', ovmf.firmware.type)

    def test_no_tpm_is_no_vtpm_and_no_refusal(self):
        facts = domain_xml.facts_from_xml(
            "<domain type='kvm'><uuid>%s</uuid></domain>" % UUID)
        self.assertIsNone(facts.vtpm)
        self.assertIsNone(facts.refusal)


class TestRefusals(test_base.TestCase):

    def test_passthrough_tpm(self):
        xml = kvm().replace(
            "<backend type='emulator' version='2.0'>",
            "<backend type='passthrough'><device path='/dev/tpm0'/>")
        facts = domain_xml.facts_from_xml(xml)
        self.assertIsNone(facts.vtpm)
        self.assertIn('passthrough TPM', facts.refusal)
        self.assertIn('/dev/tpm0', facts.refusal)
        self.assertIn('cannot leave the host', facts.refusal)

    def test_external_swtpm(self):
        xml = kvm().replace(
            "<backend type='emulator' version='2.0'>",
            "<backend type='external'><source type='unix' mode='connect' "
            "path='/run/swtpm.sock'/>")
        refusal = domain_xml.facts_from_xml(xml).refusal
        self.assertIn('externally managed', refusal)
        self.assertIn('/run/swtpm.sock', refusal)

    def test_two_tpms(self):
        xml = kvm().replace('</devices>', "<tpm model='tpm-spapr'><backend "
                            "type='emulator'/></tpm></devices>")
        facts = domain_xml.facts_from_xml(xml)
        self.assertIsNone(facts.vtpm)
        self.assertIn('2 TPM devices', facts.refusal)

    def test_custom_swtpm_state_location(self):
        xml = kvm().replace("<active_pcr_banks>",
                            "<source type='dir' path='/srv/tpm'/>"
                            "<active_pcr_banks>")
        self.assertIn('custom location',
                      domain_xml.facts_from_xml(xml).refusal)

    def test_xen_vtpm_stub_domains_themselves(self):
        for kernel, role in (
                ('/usr/lib/xen/boot/vtpm-stubdom.gz', 'vTPM stub domain'),
                ('/usr/lib/xen-4.17/boot/vtpmmgr-stubdom.gz',
                 'vTPM manager domain')):
            refusal = domain_xml.facts_from_xml(xen_pv(kernel)).refusal
            self.assertIn(role, refusal)
            self.assertIn('xen-vtpmmgr(7)', refusal)
            self.assertIn('does not yet support migration', refusal)
        # The same kernel name on KVM means nothing.
        self.assertIsNone(domain_xml.facts_from_xml(
            xen_pv('/x/vtpm-stubdom.gz').replace("type='xen'",
                                                 "type='kvm'")).refusal)

    def test_xen_guest_declared_in_metadata(self):
        metadata = ("<kx:vtpm xmlns:kx='%s' backend='stubdom' "
                    "domain='guest-vtpm'/>" % domain_xml.XEN_VTPM_NS)
        refusal = domain_xml.facts_from_xml(xen_pv(metadata=metadata)).refusal
        self.assertIn('Xen stub-domain vTPM', refusal)
        self.assertIn('guest-vtpm', refusal)
        self.assertIn('domain metadata', refusal)
        self.assertIn('TPM 1.2', refusal)
        self.assertIn("xen-vtpmmgr(7)", refusal)
        self.assertIn("'does not yet support migration'", refusal)
        # Another namespace is not ours.
        other = metadata.replace(domain_xml.XEN_VTPM_NS, 'urn:other')
        self.assertIsNone(domain_xml.facts_from_xml(
            xen_pv(metadata=other)).refusal)

    def test_xen_guest_declared_in_xl_config(self):
        config = ('name = "guest"\n'
                  '# vtpm = ["backend=commented-out"]\n'
                  "vtpm = [ 'backend=guest-vtpm' ,\n"
                  '         "backend=second,uuid=ac0a5b9e-cbe2-4c07-b43b" ]\n'
                  'disk = [ "file:/srv/guest.img,xvda,w" ]\n')
        self.assertEqual(
            [{'backend': 'guest-vtpm'},
             {'backend': 'second', 'uuid': 'ac0a5b9e-cbe2-4c07-b43b'}],
            domain_xml.xl_config_vtpms(config))
        refusal = domain_xml.facts_from_xml(xen_pv(),
                                            xl_config=config).refusal
        self.assertIn('xl configuration', refusal)
        self.assertIn('guest-vtpm', refusal)
        self.assertIsNone(domain_xml.facts_from_xml(
            xen_pv(), xl_config='memory = 512\n').refusal)
        self.assertRaises(exception.InstanceStateError,
                          domain_xml.xl_config_vtpms,
                          'x' * (domain_xml.MAX_XL_CONFIG_BYTES + 1))
