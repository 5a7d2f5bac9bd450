"""EC P-256 key files for ES256 signatures, and their key ids.

Two kinds of signer use them: the verifier signs its answers ([korora]
verifier_signing_key, pinned by hosts in verifier_public_keys) and
operators sign reference policies ([korora] policy_signing_keys). One
reader for both: bounded, no symlinks, regular files only, P-256 only;
a private key the caller marks private must be readable by its owner
alone. A key's id is its RFC 7638 JWK thumbprint, the JWS "kid".
"""

import base64
import hashlib
import json
import os
import stat

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization

from korora_nova import exception

MAX_KEY_FILE = 16 * 1024


def key_id(public_key):
    """The RFC 7638 JWK thumbprint of an EC P-256 public key."""
    numbers = public_key.public_numbers()

    def coordinate(value):
        return _base64url(value.to_bytes(32, 'big'))

    jwk = json.dumps({'crv': 'P-256', 'kty': 'EC',
                      'x': coordinate(numbers.x), 'y': coordinate(numbers.y)},
                     separators=(',', ':'), sort_keys=True)
    return _base64url(hashlib.sha256(jwk.encode('ascii')).digest())


def load_private_key(path, what, error=exception.ConfigurationError,
                     owner_only=True):
    """The unencrypted PEM private key at path; error names what is
    wrong. owner_only: refuse a file others may read."""
    data = _read(path, what, error, owner_only)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except UnsupportedAlgorithm as failure:
        raise _not_p256(what, path, error, failure)
    except (ValueError, TypeError) as failure:
        raise error('the %s %s is not an unencrypted PEM private key: %s'
                    % (what, path, failure))
    return _p256(key, what, path, error)


def load_public_key(path, what, error=exception.ConfigurationError):
    data = _read(path, what, error, owner_only=False)
    try:
        key = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm as failure:
        raise _not_p256(what, path, error, failure)
    except (ValueError, TypeError) as failure:
        raise error('the %s %s is not a PEM public key: %s'
                    % (what, path, failure))
    return _p256(key, what, path, error)


def generate(path):
    """A new P-256 private key, written to path with mode 0600; an
    existing file is never overwritten."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     os.O_NOFOLLOW, 0o600)
    except OSError as failure:
        raise exception.ConfigurationError('cannot create the signing key '
                                           '%s: %s'
                                           % (path, failure.strerror))
    with os.fdopen(fd, 'wb') as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)
    return key


def public_pem(public_key):
    return public_key.public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path, what, error, owner_only):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as failure:
        raise error('cannot read the %s %s: %s'
                    % (what, path, failure.strerror))
    with os.fdopen(fd, 'rb') as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise error('the %s %s is not a file' % (what, path))
        if owner_only and info.st_mode & 0o077:
            raise error('the %s %s is readable by others (mode %o): make '
                        'it 0600' % (what, path, stat.S_IMODE(info.st_mode)))
        data = handle.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise error('the %s %s is larger than %d bytes'
                    % (what, path, MAX_KEY_FILE))
    return data


def _not_p256(what, path, error, why=None):
    reason = 'the %s %s is not an EC P-256 key (ES256 needs one)' % (what,
                                                                     path)
    return error('%s: %s' % (reason, why) if why else reason)


def _p256(key, what, path, error):
    if not isinstance(key, (ec.EllipticCurvePrivateKey,
                            ec.EllipticCurvePublicKey)) or not isinstance(
            key.curve, ec.SECP256R1):
        raise _not_p256(what, path, error)
    return key


def _base64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')
