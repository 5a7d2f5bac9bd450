"""Instance state on libvirt hosts: QEMU/KVM with swtpm, and Xen (libxl).

What is read, and how:

* the domain definition: ``lookupByUUIDString(uuid).XMLDesc(0)`` on a
  read-only connection, opened for the call and closed after it (short
  libvirt calls only; nothing waits on libvirt while files are hashed);
* the vTPM state: ``<swtpm_root>/<uuid>/tpm2/tpm2-00.permall`` (TPM 2.0)
  or ``<swtpm_root>/<uuid>/tpm1.2/tpm-00.permall`` (TPM 1.2), where
  libvirt's swtpm keeps it, opened without following any symlink below
  swtpm_root;
* the UEFI variable store: the path in ``<os><nvram>``;
* disks (block migration only): the file or block device in ``<source>``.

Why vtpm-state digests the decrypted state: libvirt starts swtpm with
``--key pwdfd=N,mode=aes-256-cbc`` whenever the TPM has an
``<encryption secret=...>`` (Nova always gives one). swtpm then stores
its state as a header, AES-256-CBC ciphertext under a key PBKDF2-derived
from the secret, an HMAC-SHA256 and a fresh random IV drawn on every
write (swtpm_nvstore.c, SWTPM_RollAndSetGlobalIvec). The destination's
swtpm writes the state it received with a new IV, so the file's bytes
differ between hosts even when nothing changed. The plaintext does not:
this backend checks the HMAC, decrypts, and digests the plaintext. It
needs the secret's value for that (``vtpm_secret``, or a
``secret_provider``); without it, an encrypted state cannot be measured
and measure() says so. A state failing its HMAC (tampered, or another
secret) is an InstanceStateError naming 'vtpm-state'.

Disks: a raw disk's bytes are its content, and are digested as they
are. Any other format (qcow2) is refused: after a block migration the
destination's qcow2 holds the same guest data in a different layout, so
its bytes would never match.

Xen: XenStateBackend opens ``xen:///system`` (libvirt's libxl driver)
and adds the xl configuration folder; see domain_xml for how a Xen
stub-domain vTPM is recognised and refused. xen_vtpmmgr_domains() lists
the running vTPM manager domain for the vTPM manager's self-measurement.
"""

import hashlib
import hmac
import os
import shutil
import struct

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import modes
from oslo_log import log as logging

from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.hypervisors import domain_xml

LOG = logging.getLogger(__name__)

DEFAULT_URI = 'qemu:///system'
DEFAULT_XEN_URI = 'xen:///system'
DEFAULT_SWTPM_ROOT = '/var/lib/libvirt/swtpm'
STATE_FILES = {'2.0': ('tpm2', 'tpm2-00.permall'),
               '1.2': ('tpm1.2', 'tpm-00.permall')}
MAX_SECRET_BYTES = 4096

# swtpm's state file format (swtpm_nvstore.c, tlv.h).
_HEADER = struct.Struct('>BBHHI')   # version, min_version, hdrsize,
#                                     flags, total length
_TLV = struct.Struct('>HI')         # tag, length
BLOB_FLAG_ENCRYPTED = 0x01
BLOB_FLAG_ENCRYPTED_256BIT_KEY = 0x08
TAG_DATA = 1
TAG_ENCRYPTED_DATA = 2
TAG_HMAC = 3
TAG_IVEC_ENCRYPTED_DATA = 6
# swtpm's key from a passphrase (key.c): PBKDF2-HMAC-SHA512, salt
# 'swtpm', 1000 iterations (its default kdf since 0.2.0).
PBKDF2_SALT = b'swtpm'
PBKDF2_ITERATIONS = 1000
SWTPM_PAD_UNIT = 32


def _state_error(message):
    return exception.InstanceStateError(message, item=base.VTPM_STATE)


def swtpm_state_plaintext(data, secret=None, what='the vTPM state'):
    """The TPM state inside an swtpm state file (bytes).

    An encrypted file needs secret, the passphrase libvirt hands swtpm;
    its HMAC is checked before anything is decrypted.
    """
    if len(data) < _HEADER.size:
        raise _state_error('%s is not an swtpm state file: %d bytes'
                           % (what, len(data)))
    version, min_version, header_size, flags, total = _HEADER.unpack_from(
        data)
    if version != 2 or min_version > 2 or header_size != _HEADER.size:
        raise _state_error('%s is not an swtpm state file Kororā can read '
                           '(header version %d, size %d)'
                           % (what, version, header_size))
    if total != len(data):
        raise _state_error('%s is truncated or padded: its header says %d '
                           'bytes, the file holds %d'
                           % (what, total, len(data)))
    fields = {}
    offset = header_size
    while offset < len(data):
        if offset + _TLV.size > len(data):
            raise _state_error('%s ends inside a field header' % what)
        tag, length = _TLV.unpack_from(data, offset)
        offset += _TLV.size
        if length > len(data) - offset:
            raise _state_error('%s ends inside field %d' % (what, tag))
        if tag in fields:
            raise _state_error('%s holds field %d twice' % (what, tag))
        fields[tag] = data[offset:offset + length]
        offset += length

    if not flags & BLOB_FLAG_ENCRYPTED:
        if TAG_DATA not in fields:
            raise _state_error('%s holds no TPM state' % what)
        return fields[TAG_DATA]

    for tag in (TAG_ENCRYPTED_DATA, TAG_HMAC, TAG_IVEC_ENCRYPTED_DATA):
        if tag not in fields:
            raise _state_error('%s is encrypted but lacks field %d'
                               % (what, tag))
    if secret is None:
        # No item: this says nothing about the state, only that this
        # host cannot read it now (nova-compute restarted, say).
        raise exception.InstanceStateError(
            '%s is encrypted (swtpm re-encrypts it with a fresh random IV '
            'on every write, so its bytes differ from host to host): '
            'measuring it needs the value of the vTPM secret' % what)
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    if not isinstance(secret, bytes) or not 0 < len(secret) <= \
            MAX_SECRET_BYTES:
        raise _state_error('the vTPM secret must be 1 to %d bytes'
                           % MAX_SECRET_BYTES)
    key_length = 32 if flags & BLOB_FLAG_ENCRYPTED_256BIT_KEY else 16
    key = hashlib.pbkdf2_hmac('sha512', secret, PBKDF2_SALT,
                              PBKDF2_ITERATIONS, key_length)
    ciphertext = fields[TAG_ENCRYPTED_DATA]
    ivec = fields[TAG_IVEC_ENCRYPTED_DATA]
    expected = hmac.new(key, ciphertext + ivec, 'sha256').digest()
    if not hmac.compare_digest(expected, fields[TAG_HMAC]):
        raise _state_error(
            '%s fails its HMAC check: it was altered, or it is encrypted '
            'under another secret' % what)
    if len(ivec) < 16 or not ciphertext or len(ciphertext) % 16:
        raise _state_error('%s has a malformed IV or ciphertext' % what)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(ivec[:16])).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    # swtpm pads PKCS#7-style to its own 32-byte unit (its IV field is 32
    # bytes too), so a pad may be longer than one AES block: 1 to 32
    # bytes, each holding the pad's length.
    pad = padded[-1]
    if not 1 <= pad <= SWTPM_PAD_UNIT or pad > len(padded) or (
            padded[-pad:] != bytes([pad]) * pad):
        raise _state_error('%s decrypts to malformed padding' % what)
    return padded[:-pad]


def _libvirt():
    try:
        import libvirt
    except ImportError:
        raise exception.InstanceStateError(
            'libvirt-python is not installed: the libvirt backend needs it')
    return libvirt


class LibvirtStateBackend(base.InstanceStateBackend):
    """Instance state on a libvirt host (QEMU/KVM by default).

    uri: the libvirt connection URI (test:///ABS/node.xml works too).
    swtpm_root: where libvirt keeps swtpm state.
    secret_provider: callable(secret_uuid) -> passphrase, used when
    measure() gets no vtpm_secret.
    xl_config_dir: Xen only: a folder of <domain name>.cfg xl configs.
    """

    def __init__(self, uri=DEFAULT_URI, swtpm_root=DEFAULT_SWTPM_ROOT,
                 secret_provider=None, xl_config_dir=None,
                 max_disk_bytes=base.MAX_DISK_BYTES):
        self.uri = uri
        self.swtpm_root = swtpm_root
        self.secret_provider = secret_provider
        self.xl_config_dir = xl_config_dir
        self.max_disk_bytes = max_disk_bytes

    def __repr__(self):
        return '%s(%r)' % (type(self).__name__, self.uri)

    def domain_definition(self, uuid):
        """The domain's live definition, from a read-only connection."""
        libvirt = _libvirt()
        uuid = base.validate_uuid(uuid)
        try:
            connection = libvirt.openReadOnly(self.uri)
        except libvirt.libvirtError as error:
            raise exception.InstanceStateError(
                'cannot reach libvirt at %s: %s' % (self.uri, error))
        try:
            domain = connection.lookupByUUIDString(uuid)
            return domain.XMLDesc(0)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise exception.InstanceStateError(
                    'libvirt at %s has no domain %s' % (self.uri, uuid))
            raise exception.InstanceStateError(
                'libvirt at %s cannot describe domain %s: %s'
                % (self.uri, uuid, error))
        finally:
            try:
                connection.close()
            except libvirt.libvirtError:
                pass

    def _xl_config(self, name):
        if not self.xl_config_dir or not name:
            return None
        if '/' in name or name in ('.', '..'):
            return None
        path = os.path.join(self.xl_config_dir, name + '.cfg')
        # A hint that can only add a refusal: symlinks are followed.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise exception.InstanceStateError(
                'cannot read xl configuration %s: %s'
                % (path, error.strerror))
        fd = base.checked_fd(fd, path, 'xl configuration')
        return base.read_fd(fd, domain_xml.MAX_XL_CONFIG_BYTES, path,
                            'xl configuration').decode('utf-8', 'replace')

    def _facts(self, uuid):
        xml = self.domain_definition(uuid)
        facts = domain_xml.facts_from_xml(xml)
        if facts.domain_type == 'xen' and self.xl_config_dir:
            config = self._xl_config(facts.name)
            if config is not None:
                facts = domain_xml.facts_from_xml(xml, xl_config=config)
        if facts.uuid != uuid:
            raise exception.InstanceStateError(
                'libvirt described domain %s as %s' % (uuid, facts.uuid),
                item=base.DOMAIN_SECURITY)
        return facts

    def state_path(self, uuid, version='2.0'):
        folder, name = STATE_FILES.get(version or '2.0', STATE_FILES['2.0'])
        return os.path.join(self.swtpm_root, base.validate_uuid(uuid),
                            folder, name)

    def has_instance(self, instance_uuid):
        """<swtpm_root>/<uuid> is a folder (a link is not followed)."""
        path = os.path.join(self.swtpm_root, base.validate_uuid(instance_uuid))
        return os.path.isdir(path) and not os.path.islink(path)

    def remove_instance(self, instance_uuid):
        """Remove <swtpm_root>/<uuid> (libvirt leaves it after an
        outgoing migration when the domain is kept defined)."""
        path = os.path.join(self.swtpm_root, base.validate_uuid(instance_uuid))
        if os.path.islink(path):
            raise exception.InstanceStateError(
                'refusing to remove %s: it is a '
                'symbolic link' % path)
        shutil.rmtree(path, ignore_errors=True)

    def _vtpm_state_digest(self, uuid, facts, vtpm_secret):
        tpm = facts.vtpm
        version = tpm.version or '2.0'
        if version not in STATE_FILES:
            raise _state_error('instance %s has a TPM of version %r, which '
                               'Kororā does not measure' % (uuid, version))
        folder, name = STATE_FILES[version]
        path = os.path.join(self.swtpm_root, uuid, folder, name)
        what = 'the vTPM state of instance %s' % uuid
        fd = base.open_below(self.swtpm_root, [uuid, folder, name], what,
                             item=base.VTPM_STATE)
        data = base.read_fd(fd, base.MAX_VTPM_STATE_BYTES, path, what,
                            item=base.VTPM_STATE)
        secret = vtpm_secret
        if (secret is None and tpm.secret_uuid and
                self.secret_provider is not None):
            try:
                secret = self.secret_provider(tpm.secret_uuid)
            except exception.InstanceStateError:
                raise
            except Exception as error:
                # No item: the state was not read, so nothing is known
                # of it.
                raise exception.InstanceStateError(
                    'cannot get the value of vTPM secret %s: %s'
                    % (tpm.secret_uuid, error))
        plaintext = swtpm_state_plaintext(data, secret, what)
        return base.sha256_hex(plaintext)

    def _nvram_digest(self, uuid, facts):
        what = 'the UEFI NVRAM of instance %s' % uuid
        firmware = facts.firmware
        if firmware.nvram_format not in (None, 'raw'):
            raise exception.InstanceStateError(
                '%s is in %s format, which Kororā does not measure'
                % (what, firmware.nvram_format), item=base.NVRAM)
        fd = base.open_path(firmware.nvram_path, what, item=base.NVRAM)
        return base.hash_fd(fd, base.MAX_NVRAM_BYTES, firmware.nvram_path,
                            what, item=base.NVRAM)

    def disk_refusal(self, uuid, disk):
        what = 'disk %s of instance %s' % (disk.target, uuid)
        if disk.source_type not in ('file', 'block'):
            return ('%s is a %s disk, which a block migration does not '
                    'copy and Kororā does not measure'
                    % (what, disk.source_type))
        if (disk.format or 'raw') != 'raw':
            return ('%s is in %s format: after a block migration the '
                    "destination's image holds the same data in another "
                    'layout, so Kororā measures raw disks only'
                    % (what, disk.format))
        return None

    def _disk_digest(self, uuid, facts, disk):
        item = base.disk_item(disk.target)
        what = 'disk %s of instance %s' % (disk.target, uuid)
        reason = self.disk_refusal(uuid, disk)
        if reason:
            raise exception.InstanceStateError(reason, item=item)
        fd = base.open_path(disk.source, what, item=item,
                            block=disk.source_type == 'block')
        return base.hash_fd(fd, self.max_disk_bytes, disk.source, what,
                            item=item)


class XenStateBackend(LibvirtStateBackend):
    """Instance state on a Xen host through libvirt's libxl driver.

    Measures swtpm-backed vTPMs as on KVM (same state layout below
    swtpm_root) and refuses Xen stub-domain vTPMs (see domain_xml).
    """

    def __init__(self, uri=DEFAULT_XEN_URI, swtpm_root=DEFAULT_SWTPM_ROOT,
                 secret_provider=None, xl_config_dir='/etc/xen',
                 max_disk_bytes=base.MAX_DISK_BYTES):
        super().__init__(uri=uri, swtpm_root=swtpm_root,
                         secret_provider=secret_provider,
                         xl_config_dir=xl_config_dir,
                         max_disk_bytes=max_disk_bytes)


def xen_vtpmmgr_domains(uri, image=None):
    """DomainFacts of the running domains that libvirt at uri lists as
    Xen's vTPM manager: booted from a vtpmmgr-stubdom* kernel or from
    image, or named vtpmmgr (xen-vtpmmgr(7)'s example), so that one
    booted from an unexpected kernel is still found.

    libvirt's libxl driver lists only Domain-0 and the domains libvirt
    started; a vtpmmgr started with xl is not among them.
    """
    libvirt = _libvirt()
    wanted = os.path.normpath(image) if image else None
    try:
        connection = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as error:
        raise exception.InstanceStateError(
            'cannot reach libvirt at %s: %s' % (uri, error))
    found = []
    try:
        domains = connection.listAllDomains(
            libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        for domain in domains:
            try:
                xml = domain.XMLDesc(0)
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue        # gone since it was listed
                raise
            facts = domain_xml.facts_from_xml(xml)
            if facts.domain_type != 'xen':
                continue
            role = any(sign.role == domain_xml.XEN_STUBDOM_KERNELS[
                'vtpmmgr-stubdom'] for sign in facts.xen_stubdom)
            if role or facts.name == 'vtpmmgr' or (
                    wanted and facts.kernel and
                    os.path.normpath(facts.kernel) == wanted):
                found.append(facts)
    except libvirt.libvirtError as error:
        raise exception.InstanceStateError(
            'libvirt at %s cannot list its running domains: %s'
            % (uri, error))
    finally:
        try:
            connection.close()
        except libvirt.libvirtError:
            pass
    return found
