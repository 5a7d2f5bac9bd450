"""The instance-state backend interface, measurements and bounded reads.

A backend measures an instance's constrained data items (Clark-Wilson's
CDIs) into a Measurement: an ordered mapping of item name to the SHA-256
of the item, in hex. The items:

``vtpm-state``
    the vTPM's permanent state (swtpm's ``tpm2-00.permall``); the
    libvirt backend digests the decrypted state (see libvirt_backend).
``nvram``
    the UEFI variable store, only when the domain has one.
``domain-security``
    a canonical digest of the security-relevant parts of the domain
    definition (see domain_xml.DomainFacts.security_view).
``disk:<target>``
    a disk's content, only when a block migration copies the disks.

Both ends of a migration measure the same items and compare(): an item
missing on one side counts as differing, so deleting a file in flight is
caught like changing it.

Every file is opened without following a symlink in its last component
(and, below a backend's own root, in any component), must be a regular
file (or, for a block disk, a block device), and is read within a bound
fixed before the first byte: an oversized item is refused, never read.
"""

import abc
import collections.abc
import errno
import hashlib
import os
import re
import stat
import uuid as uuidlib

from korora_nova import exception

VTPM_STATE = 'vtpm-state'
NVRAM = 'nvram'
DOMAIN_SECURITY = 'domain-security'
DISK_PREFIX = 'disk:'

# Bounds. swtpm's TPM 2.0 state is a few KiB to ~100 KiB (libtpms keeps
# at most 128 KiB of NV); OVMF variable stores are 128 KiB to 4 MiB.
MAX_VTPM_STATE_BYTES = 4 * 1024 * 1024
MAX_NVRAM_BYTES = 64 * 1024 * 1024
MAX_DISK_BYTES = 16 * 1024 ** 4          # 16 TiB, per disk
MAX_MEASUREMENT_ITEMS = 256
MAX_ITEM_NAME = 64
CHUNK = 1024 * 1024

_DIGEST = re.compile(r'^[0-9a-f]{64}$')
_NAME = re.compile(r'^(vtpm-state|nvram|domain-security|'
                   r'disk:[A-Za-z0-9_.-]{1,32})$')
_UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                   r'[0-9a-f]{12}$')


def validate_uuid(value):
    """The canonical (lower-case, hyphenated) form of an instance UUID.

    Instance UUIDs become path components: anything but a UUID is
    refused before it gets near a path.
    """
    if not isinstance(value, str) or len(value) > 64:
        raise exception.InstanceStateError(
            'not an instance UUID: %r' % (value,))
    try:
        canonical = str(uuidlib.UUID(value))
    except ValueError:
        raise exception.InstanceStateError(
            'not an instance UUID: %r' % (value,))
    if not _UUID.match(canonical) or value.lower() not in (
            canonical, canonical.replace('-', '')):
        raise exception.InstanceStateError(
            'not an instance UUID: %r' % (value,))
    return canonical


def validate_item_name(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise exception.InstanceStateError('not a measurement item name: %r'
                                           % (name,))
    return name


class Measurement(collections.abc.Mapping):
    """An ordered, immutable mapping: item name -> SHA-256 hex digest."""

    def __init__(self, items=()):
        if isinstance(items, collections.abc.Mapping):
            items = items.items()
        ordered = {}
        for name, digest in items:
            validate_item_name(name)
            if not isinstance(digest, str) or not _DIGEST.match(digest):
                raise exception.InstanceStateError(
                    'measurement of %s is not a SHA-256 hex digest'
                    % name, item=name)
            if name in ordered:
                raise exception.InstanceStateError(
                    'item %s measured twice' % name,
                    item=name)
            ordered[name] = digest
            if len(ordered) > MAX_MEASUREMENT_ITEMS:
                raise exception.InstanceStateError(
                    'a measurement has at most %d items'
                    % MAX_MEASUREMENT_ITEMS)
        self._items = ordered

    def __getitem__(self, name):
        return self._items[name]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return 'Measurement(%s)' % ', '.join(
            '%s=%s' % (name, digest[:12])
            for name, digest in self._items.items())

    def to_primitive(self):
        """[[name, digest], ...]: survives any serializer in order."""
        return [[name, digest] for name, digest in self._items.items()]

    @classmethod
    def from_primitive(cls, value):
        """Rebuild a measurement from to_primitive()'s list (or a dict)."""
        if isinstance(value, collections.abc.Mapping):
            value = list(value.items())
        if not isinstance(value, (list, tuple)):
            raise exception.InstanceStateError('a measurement is a list of '
                                               '[name, digest] pairs')
        if len(value) > MAX_MEASUREMENT_ITEMS:
            raise exception.InstanceStateError(
                'a measurement has at most %d items'
                % MAX_MEASUREMENT_ITEMS)
        pairs = []
        for pair in value:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise exception.InstanceStateError(
                    'a measurement is a list of '
                    '[name, digest] pairs')
            pairs.append((pair[0], pair[1]))
        return cls(pairs)


def compare(expected, actual):
    """The names of the items that differ, in expected's order and then
    actual's; an item present on one side only differs. [] if equal."""
    differing = []
    for name, digest in expected.items():
        if actual.get(name) != digest:
            differing.append(name)
    for name in actual:
        if name not in expected:
            differing.append(name)
    return differing


# Bounded, symlink-refusing reads.

_OPEN_FLAGS = (os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK |
               getattr(os, 'O_CLOEXEC', 0))
_DIR_FLAGS = (os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY |
              getattr(os, 'O_CLOEXEC', 0))


def _open_error(error, path, what, item):
    if error.errno == errno.ENOENT:
        return exception.InstanceStateError('%s is missing: %s' % (what, path),
                                            item=item)
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        return exception.InstanceStateError(
            '%s is refused: %s is (or lies below) a symbolic link or not '
            'a directory where one was expected; the measured file must '
            'be the one at that path' % (what, path), item=item)
    return exception.InstanceStateError(
        '%s cannot be opened: %s: %s'
        % (what, path, error.strerror), item=item)


def open_below(root, parts, what, item=None):
    """Open root/parts[0]/.../parts[-1] for reading, following no
    symlink below root (root itself may be one: it is configuration).

    Returns an open file descriptor of a regular file.
    """
    path = os.path.join(root, *parts)
    try:
        current = os.open(root, os.O_RDONLY | os.O_DIRECTORY |
                          getattr(os, 'O_CLOEXEC', 0))
    except OSError as error:
        raise _open_error(error, root, what, item)
    try:
        for part in parts[:-1]:
            try:
                following = os.open(part, _DIR_FLAGS, dir_fd=current)
            except OSError as error:
                raise _open_error(error, path, what, item)
            os.close(current)
            current = following
        try:
            fd = os.open(parts[-1], _OPEN_FLAGS, dir_fd=current)
        except OSError as error:
            raise _open_error(error, path, what, item)
    finally:
        os.close(current)
    return checked_fd(fd, path, what, item, block=False)


def open_path(path, what, item=None, block=False):
    """Open an absolute path named by a domain definition, refusing a
    symlink as its last component (a block device node may be reached
    through one: /dev/<vg>/<lv> always is)."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise exception.InstanceStateError('%s has no absolute path: %r'
                                           % (what, path), item=item)
    flags = _OPEN_FLAGS & ~os.O_NOFOLLOW if block else _OPEN_FLAGS
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise _open_error(error, path, what, item)
    return checked_fd(fd, path, what, item, block=block)


def checked_fd(fd, path, what, item=None, block=False):
    """fd if it is a regular file (or block device); closed if not."""
    try:
        mode = os.fstat(fd).st_mode
        wanted = stat.S_ISBLK(mode) if block else stat.S_ISREG(mode)
        if not wanted:
            raise exception.InstanceStateError(
                '%s is refused: %s is not a %s' % (
                    what, path, 'block device' if block else
                    'regular file'), item=item)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _size(fd):
    mode = os.fstat(fd).st_mode
    if stat.S_ISBLK(mode):
        return os.lseek(fd, 0, os.SEEK_END)
    return os.fstat(fd).st_size


def _chunks(fd, limit, path, what, item):
    """A file's bytes in chunks, refusing more than limit; closes fd.
    A pipe (no size known beforehand) is read up to limit + 1 bytes."""
    try:
        mode = os.fstat(fd).st_mode
        seekable = stat.S_ISREG(mode) or stat.S_ISBLK(mode)
        if seekable:
            size = _size(fd)
            if size > limit:
                raise exception.InstanceStateError(
                    '%s is refused: %s holds %d bytes, more than the %d '
                    'allowed' % (what, path, size, limit), item=item)
            os.lseek(fd, 0, os.SEEK_SET)
        total = 0
        while True:
            chunk = os.read(fd, min(CHUNK, limit + 1 - total))
            if not chunk:
                return
            total += len(chunk)
            if total > limit:
                if not seekable:
                    raise exception.InstanceStateError(
                        '%s is refused: %s is larger than %d bytes'
                        % (what, path, limit), item=item)
                raise exception.InstanceStateError(
                    '%s is refused: %s grew past the %d bytes allowed '
                    'while it was read' % (what, path, limit), item=item)
            yield chunk
    except OSError as error:
        raise exception.InstanceStateError(
            '%s cannot be read: %s: %s'
            % (what, path, error.strerror), item=item)
    finally:
        os.close(fd)


def read_fd(fd, limit, path, what, item=None):
    """All of a file's bytes, refusing more than limit; closes fd."""
    return b''.join(_chunks(fd, limit, path, what, item))


def hash_fd(fd, limit, path, what, item=None):
    """SHA-256 hex of a file's bytes, streamed in chunks; closes fd."""
    digest = hashlib.sha256()
    for chunk in _chunks(fd, limit, path, what, item):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def disk_item(target):
    return validate_item_name(DISK_PREFIX + target)


class InstanceStateBackend(metaclass=abc.ABCMeta):
    """Measures an instance's constrained data items on one host.

    Subclasses provide _facts() (the parsed domain definition) and the
    per-item digests; measure() puts them together in a fixed order.
    Backends are safe to call from several threads: each call opens what
    it reads and closes it again.
    """

    compare = staticmethod(compare)

    def describe(self, instance_uuid):
        """The security facts of the instance's domain definition
        (domain_xml.DomainFacts; .to_dict() for messages)."""
        return self._facts(validate_uuid(instance_uuid))

    def check_migratable(self, instance_uuid, disks=False):
        """The facts, or MigrationRefused if the vTPM cannot migrate, or
        (disks: the manifest will hold the disks) if measure() could not
        digest one of them: refused before anything moves, not after."""
        facts = self.describe(instance_uuid)
        if facts.refusal:
            raise exception.MigrationRefused(facts.refusal)
        if disks:
            for disk in select_disks(facts):
                reason = self.disk_refusal(facts.uuid, disk)
                if reason:
                    raise exception.MigrationRefused(reason)
        return facts

    def disk_refusal(self, uuid, disk):
        """Why this backend cannot measure disk, or None."""
        return None

    def measure(self, instance_uuid, block_migration=False,
                disk_targets=None, vtpm_secret=None):
        """Measure the instance's items now.

        block_migration adds a 'disk:<target>' item for every local disk
        (or only for disk_targets, when given). vtpm_secret is the
        passphrase that encrypts the vTPM state, for backends whose state
        is encrypted (bytes or str).

        Raises MigrationRefused when the vTPM cannot migrate and
        InstanceStateError when an item cannot be measured.
        """
        uuid = validate_uuid(instance_uuid)
        facts = self._facts(uuid)
        if facts.refusal:
            raise exception.MigrationRefused(facts.refusal)
        items = []
        if facts.vtpm is not None:
            items.append((VTPM_STATE, self._vtpm_state_digest(
                uuid, facts, vtpm_secret)))
        if facts.firmware.has_nvram:
            items.append((NVRAM, self._nvram_digest(uuid, facts)))
        items.append((DOMAIN_SECURITY, facts.security_digest()))
        if block_migration:
            for disk in select_disks(facts, disk_targets):
                items.append((disk_item(disk.target),
                              self._disk_digest(uuid, facts, disk)))
        return Measurement(items)

    @abc.abstractmethod
    def has_instance(self, instance_uuid):
        """True when this host holds a copy of the instance's vTPM
        state (what remove_instance removes)."""

    @abc.abstractmethod
    def remove_instance(self, instance_uuid):
        """Remove this host's copy of the instance's vTPM state: the
        source's once a migration committed, the destination's after a
        rollback."""

    @abc.abstractmethod
    def _facts(self, uuid):
        """domain_xml.DomainFacts of the instance."""

    @abc.abstractmethod
    def _vtpm_state_digest(self, uuid, facts, vtpm_secret):
        """SHA-256 hex of the vTPM state."""

    @abc.abstractmethod
    def _nvram_digest(self, uuid, facts):
        """SHA-256 hex of the UEFI variable store."""

    @abc.abstractmethod
    def _disk_digest(self, uuid, facts, disk):
        """SHA-256 hex of a disk's content."""


def select_disks(facts, disk_targets=None):
    """The disks a block migration copies: local (file or block) disks,
    not read-only and not shareable; or exactly disk_targets."""
    if disk_targets is not None:
        by_target = {disk.target: disk for disk in facts.disks}
        chosen = []
        for target in disk_targets:
            if target not in by_target:
                raise exception.InstanceStateError(
                    'instance %s has no disk %r' % (facts.uuid, target),
                    item=DISK_PREFIX + str(target)[:32])
            chosen.append(by_target[target])
        return sorted(chosen, key=lambda disk: disk.target)
    chosen = [disk for disk in facts.disks
              if disk.source_type in ('file', 'block') and
              disk.device in ('disk', 'lun') and
              not disk.readonly and not disk.shareable]
    return sorted(chosen, key=lambda disk: disk.target)
