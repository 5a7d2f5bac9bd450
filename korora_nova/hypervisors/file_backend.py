"""Instance state in plain folders, for the fake driver and the tests.

Each fake host has a folder of its own, and each instance a folder in
it::

    <root>/<host>/<instance uuid>/
        domain.xml         the domain definition (libvirt's format)
        tpm2-00.permall    the vTPM state
        nvram.fd           the UEFI variable store (if the domain has one)
        disk.<target>      disk images (only what a test puts there)

The fake driver's live migration is copy_instance(): the files cross to
the destination host's folder, through an optional in_flight callback
that lets a test change (or drop) a file on the way. The state is
measured as the bytes that cross: unlike the libvirt backend, nothing
here re-encrypts the vTPM state, so its digest is that of the file.

The domain XML decides which items exist, as on a libvirt host: 'nvram'
when it has <os><nvram>, 'vtpm-state' when it has an emulated TPM; the
files themselves are always at the fixed names above.
"""

import os
import re
import shutil
import tempfile
from xml.sax import saxutils

from oslo_log import log as logging

from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.hypervisors import domain_xml

LOG = logging.getLogger(__name__)

DOMAIN_FILE = 'domain.xml'
STATE_FILE = 'tpm2-00.permall'
NVRAM_FILE = 'nvram.fd'
DISK_FILE_PREFIX = 'disk.'
MAX_FAKE_DISK_BYTES = 256 * 1024 * 1024

_HOST = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')
_TARGET = re.compile(r'^[A-Za-z0-9_-]{1,32}$')


def _validate_host(host):
    if not isinstance(host, str) or not _HOST.match(host) or '..' in host:
        raise exception.InstanceStateError('not a usable host name: %r'
                                           % (host,))
    return host


def _validate_target(target):
    if not isinstance(target, str) or not _TARGET.match(target):
        raise exception.InstanceStateError('not a usable disk target: %r'
                                           % (target,))
    return target


def _known_file(name):
    if name in (DOMAIN_FILE, STATE_FILE, NVRAM_FILE):
        return True
    return (name.startswith(DISK_FILE_PREFIX) and
            bool(_TARGET.match(name[len(DISK_FILE_PREFIX):])))


def make_domain_xml(uuid, name=None, domain_type='kvm', tpm_model='tpm-crb',
                    tpm_version='2.0', tpm_backend='emulator',
                    secret_uuid=None, secure_boot=False, nvram=False,
                    disks=(), metadata=''):
    """A libvirt-style domain definition for a fake instance.

    tpm_backend None means no TPM; disks is a list of targets (raw file
    disks); metadata is XML put inside <metadata> as it is.
    """
    uuid = base.validate_uuid(uuid)
    q = saxutils.quoteattr
    lines = ["<domain type=%s>" % q(domain_type),
             '  <name>%s</name>' % saxutils.escape(
                 name or 'instance-' + uuid[:8]),
             '  <uuid>%s</uuid>' % uuid]
    if metadata:
        lines.append('  <metadata>%s</metadata>' % metadata)
    lines += ["  <memory unit='KiB'>65536</memory>",
              '  <os>',
              "    <type arch='x86_64' machine='q35'>hvm</type>"]
    if secure_boot or nvram:
        lines.append("    <loader readonly='yes' secure=%s type='pflash'>"
                     '/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>'
                     % q('yes' if secure_boot else 'no'))
    if nvram:
        lines.append('    <nvram>/var/lib/libvirt/qemu/nvram/%s_VARS.fd'
                     '</nvram>' % uuid)
    lines.append('  </os>')
    if secure_boot:
        lines.append("  <features><smm state='on'/></features>")
    lines.append('  <devices>')
    for target in disks:
        lines.append("    <disk type='file' device='disk'>"
                     "<driver name='qemu' type='raw'/>"
                     '<source file=%s/><target dev=%s bus=\'virtio\'/>'
                     '</disk>' % (q(DISK_FILE_PREFIX + target), q(target)))
    if tpm_backend:
        lines.append('    <tpm model=%s>' % q(tpm_model))
        version = (' version=%s' % q(tpm_version)) if tpm_version else ''
        lines.append('      <backend type=%s%s>' % (q(tpm_backend),
                                                    version))
        if secret_uuid:
            lines.append('        <encryption secret=%s/>' % q(secret_uuid))
        if tpm_backend == 'passthrough':
            lines.append("        <device path='/dev/tpm0'/>")
        lines.append('      </backend>')
        lines.append('    </tpm>')
    lines += ['  </devices>', '</domain>', '']
    return '\n'.join(lines)


def _write(directory, name, data):
    fd = os.open(os.path.join(directory, name),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)


class FileStateBackend(base.InstanceStateBackend):
    """The instances of one fake host, below <root>/<host>/."""

    def __init__(self, root, host):
        self.root = os.path.abspath(root)
        self.host = _validate_host(host)
        self.host_dir = os.path.join(self.root, self.host)

    def __repr__(self):
        return 'FileStateBackend(%r, %r)' % (self.root, self.host)

    def instance_dir(self, instance_uuid):
        return os.path.join(self.host_dir, base.validate_uuid(instance_uuid))

    def path(self, instance_uuid, name):
        """Where one of an instance's files lives (for tests that tamper
        with it)."""
        if not _known_file(name):
            raise exception.InstanceStateError('not an instance file: %r'
                                               % (name,))
        return os.path.join(self.instance_dir(instance_uuid), name)

    def has_instance(self, instance_uuid):
        return os.path.isdir(self.instance_dir(instance_uuid))

    def list_instances(self):
        try:
            names = os.listdir(self.host_dir)
        except FileNotFoundError:
            return []
        found = []
        for name in sorted(names):
            try:
                found.append(base.validate_uuid(name))
            except exception.InstanceStateError:
                continue
        return found

    def create_instance(self, instance_uuid, vtpm_state=b'', nvram=None,
                        domain_xml_text=None, disks=None, **xml_options):
        """Create an instance's folder and files; returns the folder.

        domain_xml_text defaults to make_domain_xml(uuid, **xml_options)
        (with <nvram> when nvram is given and the disks' targets).
        """
        uuid = base.validate_uuid(instance_uuid)
        disks = dict(disks or {})
        for target in disks:
            _validate_target(target)
        if domain_xml_text is None:
            domain_xml_text = make_domain_xml(
                uuid, nvram=nvram is not None, disks=sorted(disks),
                **xml_options)
        files = {DOMAIN_FILE: domain_xml_text.encode('utf-8')}
        if vtpm_state is not None:
            files[STATE_FILE] = bytes(vtpm_state)
        if nvram is not None:
            files[NVRAM_FILE] = bytes(nvram)
        for target, data in disks.items():
            files[DISK_FILE_PREFIX + target] = bytes(data)
        return self._install(uuid, files)

    def _install(self, uuid, files):
        final = self.instance_dir(uuid)
        os.makedirs(self.host_dir, mode=0o700, exist_ok=True)
        if os.path.lexists(final):
            raise exception.InstanceStateError(
                'instance %s already exists on host %s'
                % (uuid, self.host))
        staging = tempfile.mkdtemp(prefix='.incoming-', dir=self.host_dir)
        try:
            for name, data in files.items():
                _write(staging, name, data)
            os.rename(staging, final)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            if os.path.lexists(final):
                raise exception.InstanceStateError(
                    'instance %s already exists on host %s'
                    % (uuid, self.host))
            raise exception.InstanceStateError(
                'cannot create instance %s on host %s: %s'
                % (uuid, self.host, error))
        return final

    def _read(self, uuid, name, limit, item=None):
        what = '%s of instance %s on host %s' % (name, uuid, self.host)
        fd = base.open_below(self.host_dir, [uuid, name], what, item=item)
        return base.read_fd(fd, limit, os.path.join(
            self.host_dir, uuid, name), what, item=item)

    def _hash(self, uuid, name, limit, item):
        what = '%s of instance %s on host %s' % (name, uuid, self.host)
        fd = base.open_below(self.host_dir, [uuid, name], what, item=item)
        return base.hash_fd(fd, limit, os.path.join(
            self.host_dir, uuid, name), what, item=item)

    def copy_instance(self, instance_uuid, destination, in_flight=None):
        """What the fake driver's live migration does: the instance's
        files cross to destination (another FileStateBackend).

        in_flight(name, data) -> bytes or None sees every file on its way
        and may change it (or drop it, by returning None).
        """
        uuid = base.validate_uuid(instance_uuid)
        if not isinstance(destination, FileStateBackend):
            raise exception.InstanceStateError(
                'the fake live migration copies to another '
                'FileStateBackend, not %r' % (destination,))
        if destination.host_dir == self.host_dir:
            raise exception.InstanceStateError(
                'instance %s cannot migrate from host %s to itself'
                % (uuid, self.host))
        try:
            names = sorted(os.listdir(self.instance_dir(uuid)))
        except FileNotFoundError:
            raise exception.InstanceStateError(
                'instance %s is not on host %s' % (uuid, self.host))
        files = {}
        for name in names:
            if not _known_file(name):
                LOG.debug('Not copying %s of instance %s: not an instance '
                          'file', name, uuid)
                continue
            limit = (MAX_FAKE_DISK_BYTES
                     if name.startswith(DISK_FILE_PREFIX) else
                     max(base.MAX_VTPM_STATE_BYTES, base.MAX_NVRAM_BYTES))
            data = self._read(uuid, name, limit)
            if in_flight is not None:
                data = in_flight(name, data)
                if data is None:
                    continue
            files[name] = bytes(data)
        return destination._install(uuid, files)

    def remove_instance(self, instance_uuid):
        """Delete the instance's folder (the source after a migration)."""
        path = self.instance_dir(instance_uuid)
        if os.path.islink(path):
            raise exception.InstanceStateError(
                'refusing to remove %s: it is a '
                'symbolic link' % path)
        shutil.rmtree(path, ignore_errors=True)

    # InstanceStateBackend

    def _facts(self, uuid):
        xml = self._read(uuid, DOMAIN_FILE, domain_xml.MAX_XML_BYTES,
                         item=base.DOMAIN_SECURITY)
        facts = domain_xml.facts_from_xml(xml)
        if facts.uuid != uuid:
            raise exception.InstanceStateError(
                'the domain definition of instance %s on host %s names '
                'instance %s' % (uuid, self.host, facts.uuid),
                item=base.DOMAIN_SECURITY)
        return facts

    def _vtpm_state_digest(self, uuid, facts, vtpm_secret):
        return self._hash(uuid, STATE_FILE, base.MAX_VTPM_STATE_BYTES,
                          base.VTPM_STATE)

    def _nvram_digest(self, uuid, facts):
        return self._hash(uuid, NVRAM_FILE, base.MAX_NVRAM_BYTES,
                          base.NVRAM)

    def _disk_digest(self, uuid, facts, disk):
        target = _validate_target(disk.target)
        return self._hash(uuid, DISK_FILE_PREFIX + target,
                          MAX_FAKE_DISK_BYTES, base.disk_item(target))
