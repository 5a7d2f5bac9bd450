"""Libvirt domain XML into the security facts Kororā measures.

The XML comes from libvirt (XMLDesc) or from a fake host's folder. It is
trusted-ish, and parsed as if it were not: at most MAX_XML_BYTES, no
DOCTYPE, no entity declarations (so no entity expansion of any kind, no
external entities), through expat directly into an ElementTree.

What counts as a vTPM:

``<tpm model='tpm-crb|tpm-tis'><backend type='emulator' version='2.0'>``
    swtpm, run by libvirt (QEMU/KVM). Optional ``<encryption
    secret='UUID'/>`` (Nova always sets one) and ``<active_pcr_banks>``.
    Measured.
``<backend type='passthrough'>``
    the host's own TPM (``<device path='/dev/tpm0'/>``): refused, its
    state cannot leave the host.
``<backend type='external'>``
    an swtpm libvirt does not run (libvirt >= 9.0): refused, Kororā can
    neither find nor measure its state.
Xen stub-domain vTPM
    libvirt's libxl driver has no XML for it: neither ``<tpm>`` nor any
    other element maps to xl's ``vtpm=[...]`` (libvirt's xl converter,
    src/libxl/xen_xl.c, neither parses nor formats ``vtpm``, and the
    libxl driver of libvirt 9.0 calls no libxl_device_vtpm_* function).
    Kororā therefore recognises one from three signs, any of which
    refuses the migration:

    * the domain is itself a vTPM stub domain or the vTPM manager: a Xen
      domain whose kernel is ``vtpm-stubdom*`` or ``vtpmmgr-stubdom*``
      (the images Xen installs in /usr/lib/xen/boot/);
    * its ``<metadata>`` holds ``<vtpm xmlns='XEN_VTPM_NS'
      backend='stubdom' domain='NAME'/>``, written by whoever pairs the
      guest with its vtpm-stubdom (libvirt keeps metadata verbatim);
    * its xl configuration (``<xl_config_dir>/<name>.cfg``, when the
      backend is given that folder) has a ``vtpm = [...]`` line.

Xen's own vTPM (vtpm-stubdom with vtpmmgr) is TPM 1.2 for guests and,
per xen-vtpmmgr(7), "the vTPM packaged with Xen does not yet support
migration": the refusal says so.
"""

import dataclasses
import hashlib
import json
import os
import re
from xml.etree import ElementTree
from xml.parsers import expat

from korora_nova import exception

MAX_XML_BYTES = 1024 * 1024
MAX_XL_CONFIG_BYTES = 64 * 1024

XEN_VTPM_NS = 'https://opendev.org/x/korora-nova/xmlns/xen-vtpm/1.0'

XEN_STUBDOM_KERNELS = {'vtpm-stubdom': 'vTPM stub domain',
                       'vtpmmgr-stubdom': 'vTPM manager domain'}

XEN_STUBDOM_WHY = (
    "Xen's own vTPM (vtpm-stubdom, with vtpmmgr) is TPM 1.2 for guests "
    "and, per xen-vtpmmgr(7), the vTPM packaged with Xen 'does not yet "
    "support migration'")

# Digest format of domain-security; bump when security_view() changes.
SECURITY_VIEW_VERSION = 1


class _Refused(Exception):
    pass


def parse(xml):
    """An ElementTree root element from domain XML (str or bytes)."""
    if isinstance(xml, str):
        data = xml.encode('utf-8')
    elif isinstance(xml, (bytes, bytearray)):
        data = bytes(xml)
    else:
        raise exception.DomainXMLError('domain XML must be text, not %s'
                                       % type(xml).__name__)
    if len(data) > MAX_XML_BYTES:
        raise exception.DomainXMLError(
            'domain XML of %d bytes refused: at most %d'
            % (len(data), MAX_XML_BYTES))
    if not data.strip():
        raise exception.DomainXMLError('domain XML is empty')

    builder = ElementTree.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator='}')

    def name(raw):
        return '{' + raw if '}' in raw else raw

    def start(tag, attributes):
        builder.start(name(tag), {name(key): value
                                  for key, value in attributes.items()})

    def refuse_doctype(*args):
        raise _Refused('a DOCTYPE')

    def refuse_entity(*args):
        raise _Refused('an entity declaration')

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: builder.end(name(tag))
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.ordered_attributes = False
    try:
        parser.Parse(data, True)
        root = builder.close()
    except _Refused as refused:
        raise exception.DomainXMLError(
            'domain XML refused: it contains %s' % refused)
    except expat.ExpatError as error:
        raise exception.DomainXMLError('domain XML is malformed: %s' % error)
    except (ValueError, AssertionError, RecursionError) as error:
        raise exception.DomainXMLError('domain XML is malformed: %s' % error)
    if root.tag != 'domain':
        raise exception.DomainXMLError(
            'not a domain definition: the root element '
            'is <%s>' % root.tag[:64])
    return root


@dataclasses.dataclass(frozen=True)
class TPMFacts:
    model: str = None             # tpm-tis, tpm-crb, tpm-spapr, ...
    backend: str = None           # emulator, passthrough, external
    version: str = None           # '1.2', '2.0' (None: libvirt default)
    secret_uuid: str = None       # <encryption secret=...>
    pcr_banks: tuple = ()         # <active_pcr_banks>, sorted
    device_path: str = None       # passthrough: /dev/tpm0
    source: str = None            # external socket / emulator source
    persistent_state: str = None

    def security_view(self):
        return {'model': self.model, 'backend': self.backend,
                'version': self.version, 'secret_uuid': self.secret_uuid,
                'pcr_banks': list(self.pcr_banks)}


@dataclasses.dataclass(frozen=True)
class FirmwareFacts:
    type: str = None              # 'efi' or 'bios' (None: no firmware)
    loader_type: str = None       # rom, pflash
    loader_secure: str = None     # <loader secure='yes|no'>
    secure_boot: str = None       # <firmware><feature name='secure-boot'>
    enrolled_keys: str = None     # ... name='enrolled-keys'
    smm: str = None               # <features><smm state='on|off'>
    nvram_path: str = None        # <os><nvram>PATH</nvram>
    nvram_format: str = None      # <nvram format='raw|qcow2'>
    has_nvram: bool = False

    def security_view(self):
        return {'type': self.type, 'loader_type': self.loader_type,
                'loader_secure': self.loader_secure,
                'secure_boot': self.secure_boot,
                'enrolled_keys': self.enrolled_keys, 'smm': self.smm}


@dataclasses.dataclass(frozen=True)
class DiskFacts:
    target: str
    device: str = 'disk'          # disk, cdrom, floppy, lun
    source_type: str = None       # file, block, network, volume, ...
    source: str = None            # file path or block device
    format: str = None            # <driver type='raw|qcow2'>
    readonly: bool = False
    shareable: bool = False


@dataclasses.dataclass(frozen=True)
class XenStubdomFacts:
    evidence: str                 # 'metadata', 'xl-config', 'kernel'
    backend_domain: str = None    # the vtpm-stubdom's name
    role: str = None              # set when the domain is itself one


@dataclasses.dataclass(frozen=True)
class DomainFacts:
    domain_type: str              # kvm, qemu, xen, ...
    name: str = None
    uuid: str = None
    os_type: str = None           # hvm, xen, linux (Xen PV)
    kernel: str = None
    tpms: tuple = ()
    firmware: FirmwareFacts = FirmwareFacts()
    disks: tuple = ()
    xen_stubdom: tuple = ()       # XenStubdomFacts, any sign found

    @property
    def vtpm(self):
        """The emulated (swtpm) vTPM that gets measured, if any."""
        if len(self.tpms) == 1 and self.tpms[0].backend == 'emulator':
            return self.tpms[0]
        return None

    @property
    def refusal(self):
        """Why this instance's vTPM cannot migrate, or None."""
        who = self.uuid or self.name or 'the instance'
        for sign in self.xen_stubdom:
            if sign.role:
                return ('domain %s is itself a Xen %s (its kernel is %s): '
                        'it serves vTPMs on this host and cannot migrate; '
                        '%s' % (who, sign.role, self.kernel,
                                XEN_STUBDOM_WHY))
        if self.xen_stubdom:
            sign = self.xen_stubdom[0]
            return ('instance %s uses a Xen stub-domain vTPM (backend '
                    'domain %s, declared in its %s): %s, so Kororā refuses '
                    'to migrate it' % (
                        who, sign.backend_domain or 'unnamed',
                        {'metadata': 'domain metadata',
                         'xl-config': 'xl configuration'}.get(
                             sign.evidence, sign.evidence),
                        XEN_STUBDOM_WHY))
        for tpm in self.tpms:
            if tpm.backend == 'passthrough':
                return ("instance %s has a passthrough TPM (<backend "
                        "type='passthrough'>, device %s): it is the "
                        "host's own TPM, whose state cannot leave the "
                        "host, so the instance cannot migrate with it"
                        % (who, tpm.device_path or 'unnamed'))
            if tpm.backend == 'external':
                return ("instance %s has an externally managed vTPM "
                        "(<backend type='external'>, socket %s): libvirt "
                        "does not run that swtpm, so Kororā can neither "
                        "find nor measure its state" % (
                            who, tpm.source or 'unnamed'))
            if tpm.backend != 'emulator':
                return ('instance %s has a TPM with backend %r, which '
                        'Kororā does not know how to measure'
                        % (who, tpm.backend))
            if tpm.source:
                return ("instance %s keeps its swtpm state at a custom "
                        "location (<source %s>), which Kororā does not "
                        "measure yet" % (who, tpm.source))
        if len(self.tpms) > 1:
            return ('instance %s has %d TPM devices; Kororā migrates '
                    'instances with exactly one vTPM'
                    % (who, len(self.tpms)))
        return None

    def security_view(self):
        """The security-relevant parts of the definition, canonical:
        TPM model, version, backend type and secret UUID (and active PCR
        banks), firmware type, secure boot (loader secure='yes' and the
        secure-boot/enrolled-keys firmware features), SMM, and the
        domain type."""
        return {'view': SECURITY_VIEW_VERSION,
                'domain_type': self.domain_type,
                'tpm': [tpm.security_view() for tpm in self.tpms],
                'firmware': self.firmware.security_view()}

    def security_digest(self):
        canonical = json.dumps(self.security_view(), sort_keys=True,
                               separators=(',', ':'), ensure_ascii=True)
        return hashlib.sha256(canonical.encode('ascii')).hexdigest()

    def to_dict(self):
        return dataclasses.asdict(self)


def _text(element):
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _attr(element, name):
    return None if element is None else element.get(name)


def _flag(element, name):
    """A yes/no/on/off attribute, lower-cased, or None."""
    value = _attr(element, name)
    return value.strip().lower() if value else None


def _tpm_facts(element):
    backend = element.find('backend')
    banks = ()
    secret = None
    device = None
    source = None
    if backend is not None:
        encryption = backend.find('encryption')
        if encryption is not None and encryption.get('secret'):
            secret = encryption.get('secret').strip().lower()
        pcr = backend.find('active_pcr_banks')
        if pcr is not None:
            banks = tuple(sorted(child.tag for child in pcr))
        dev = backend.find('device')
        if dev is not None:
            device = dev.get('path')
        src = backend.find('source')
        if src is not None:
            source = ' '.join('%s=%s' % (key, src.get(key))
                              for key in sorted(src.keys()))
    return TPMFacts(model=element.get('model'),
                    backend=_attr(backend, 'type'),
                    version=_attr(backend, 'version'),
                    secret_uuid=secret, pcr_banks=banks,
                    device_path=device, source=source,
                    persistent_state=_attr(backend, 'persistent_state'))


_EFI_LOADER = re.compile(r'ovmf|edk2|aavmf|qemu_efi', re.IGNORECASE)


def _firmware_facts(root, os_element):
    loader = os_element.find('loader') if os_element is not None else None
    nvram = os_element.find('nvram') if os_element is not None else None
    firmware_type = _attr(os_element, 'firmware')
    secure_boot = enrolled = None
    features = (os_element.findall('firmware/feature')
                if os_element is not None else [])
    for feature in features:
        if feature.get('name') == 'secure-boot':
            secure_boot = _flag(feature, 'enabled')
        elif feature.get('name') == 'enrolled-keys':
            enrolled = _flag(feature, 'enabled')
    loader_type = _attr(loader, 'type')
    if not firmware_type:
        if (loader_type == 'pflash' or nvram is not None or
                _EFI_LOADER.search(_text(loader) or '')):
            firmware_type = 'efi'
        elif _text(_find(os_element, 'type')) == 'hvm':
            firmware_type = 'bios'
    nvram_path = _text(nvram)
    if nvram is not None and nvram_path is None:
        source = nvram.find('source')
        nvram_path = _attr(source, 'file')
    return FirmwareFacts(
        type=firmware_type, loader_type=loader_type,
        loader_secure=_flag(loader, 'secure'), secure_boot=secure_boot,
        enrolled_keys=enrolled, smm=_flag(root.find('features/smm'),
                                          'state'),
        nvram_path=nvram_path, nvram_format=_attr(nvram, 'format'),
        has_nvram=nvram is not None)


def _find(element, path):
    return None if element is None else element.find(path)


def _disk_facts(element):
    target = element.find('target')
    source = element.find('source')
    driver = element.find('driver')
    source_type = element.get('type')
    path = None
    if source is not None:
        path = source.get('file') or source.get('dev')
    return DiskFacts(
        target=_attr(target, 'dev') or '',
        device=element.get('device', 'disk'),
        source_type=source_type, source=path,
        format=_attr(driver, 'type'),
        readonly=element.find('readonly') is not None,
        shareable=element.find('shareable') is not None)


def xl_config_vtpms(text):
    """The vtpm=[...] entries of an xl domain configuration, each as a
    dict of its key=value settings ({'backend': 'domu-vtpm'})."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    if len(text) > MAX_XL_CONFIG_BYTES:
        raise exception.InstanceStateError(
            'xl configuration of %d characters refused: at most %d'
            % (len(text), MAX_XL_CONFIG_BYTES))
    lines = []
    for line in text.splitlines():
        # xl.cfg comments run from '#' to the end of the line; vtpm
        # specifications never contain '#'.
        lines.append(line.split('#', 1)[0])
    text = '\n'.join(lines)
    found = []
    for match in re.finditer(r'^[ \t]*vtpm[ \t]*=[ \t]*\[([^\]]*)\]',
                             text, re.MULTILINE):
        for double, single in re.findall(r'"([^"]*)"|\'([^\']*)\'',
                                         match.group(1)):
            spec = {}
            for setting in (double or single).split(','):
                key, _, value = setting.partition('=')
                if key.strip():
                    spec[key.strip()] = value.strip()
            found.append(spec)
    return found


def _xen_stubdom_signs(root, domain_type, kernel, xl_config):
    signs = []
    if domain_type == 'xen' and kernel:
        base_name = os.path.basename(kernel)
        for prefix, role in XEN_STUBDOM_KERNELS.items():
            if base_name.startswith(prefix):
                signs.append(XenStubdomFacts(evidence='kernel', role=role))
    metadata = root.find('metadata')
    if metadata is not None:
        for element in metadata.iter('{%s}vtpm' % XEN_VTPM_NS):
            backend = (element.get('backend') or 'stubdom').lower()
            if backend in ('stubdom', 'vtpm-stubdom', 'xen'):
                signs.append(XenStubdomFacts(
                    evidence='metadata',
                    backend_domain=element.get('domain')))
    if xl_config is not None:
        for spec in xl_config_vtpms(xl_config):
            signs.append(XenStubdomFacts(
                evidence='xl-config', backend_domain=spec.get('backend')))
    return tuple(signs)


def facts_from_xml(xml, xl_config=None):
    """DomainFacts of a domain XML document; xl_config is the text of
    the domain's xl configuration, when there is one (Xen)."""
    root = parse(xml)
    domain_type = root.get('type')
    if not domain_type:
        raise exception.DomainXMLError('domain XML has no type attribute')
    os_element = root.find('os')
    kernel = _text(_find(os_element, 'kernel'))
    devices = root.find('devices')
    tpms = ()
    disks = ()
    if devices is not None:
        tpms = tuple(_tpm_facts(tpm) for tpm in devices.findall('tpm'))
        disks = tuple(_disk_facts(disk) for disk in devices.findall('disk'))
    uuid = _text(root.find('uuid'))
    return DomainFacts(
        domain_type=domain_type.lower(), name=_text(root.find('name')),
        uuid=uuid.lower() if uuid else None,
        os_type=_text(_find(os_element, 'type')), kernel=kernel,
        tpms=tpms, firmware=_firmware_facts(root, os_element),
        disks=disks,
        xen_stubdom=_xen_stubdom_signs(root, domain_type.lower(), kernel,
                                       xl_config))
