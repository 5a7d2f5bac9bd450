"""A key shared by the vTPM manager and nova-compute of one host.

RPC replies travel through the message broker, which is not on the host.
What the vTPM manager unseals for nova-compute (a vTPM secret) crosses it
only encrypted under this key (AES-256-GCM), bound to what it is for: a
reply recorded on the bus reveals nothing and fits no other migration.
"""

import os
import stat

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from korora_nova import exception

KEY_SIZE = 32
NONCE_SIZE = 12
MAX_PLAINTEXT = 4096


def create_key(path):
    """Create the key file if missing (mode 0640); return the key."""
    directory = os.path.dirname(path)
    try:
        if directory:
            os.makedirs(directory, mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     os.O_NOFOLLOW, 0o640)
    except FileExistsError:
        return load_key(path)
    except OSError as error:
        raise exception.ConfigurationError(
            'cannot create the local channel key %s ([korora] '
            'local_channel_key): %s' % (path, error.strerror))
    # Whatever the umask: nova-compute's group must read it.
    os.fchmod(fd, 0o640)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(AESGCM.generate_key(bit_length=256))
    return load_key(path)


def load_key(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        raise exception.ConfigurationError(
            'cannot read the local channel key %s ([korora] '
            'local_channel_key): %s' % (path, error.strerror))
    try:
        with os.fdopen(fd, 'rb') as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise exception.ConfigurationError(
                    'the local channel key %s is not a file' % path)
            key = handle.read(KEY_SIZE + 1)
    except OSError as error:
        raise exception.ConfigurationError(
            'cannot read the local channel key %s ([korora] '
            'local_channel_key): %s' % (path, error.strerror))
    if len(key) != KEY_SIZE:
        raise exception.ConfigurationError(
            'the local channel key %s is not %d bytes' % (path, KEY_SIZE))
    return key


def seal(key, plaintext, binding):
    """nonce || AES-GCM(plaintext) with binding as associated data."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise exception.EvidenceError('at most %d bytes cross the local '
                                      'channel' % MAX_PLAINTEXT)
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, binding)


def open_sealed(key, sealed, binding):
    if not isinstance(sealed, bytes) or not (
            NONCE_SIZE + 16 <= len(sealed) <= NONCE_SIZE + 16 +
            MAX_PLAINTEXT):
        raise exception.EvidenceError('the sealed reply has a wrong size')
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:],
                                   binding)
    except InvalidTag:
        raise exception.EvidenceError(
            'the sealed reply does not open with this host\'s local '
            'channel key for this migration')
