"""Reference policies: for each PCR, the values an operator allows.

A policy file is JSON::

    {"name": "compute-2026-11", "version": 3,
     "pcrs": {"sha256": {"0": ["3d45...", "9f86..."], "10": ["..."]}}}

A PCR the policy names must be covered by the quote and hold one of its
values; PCRs the policy does not name are not judged.

A stored policy version counts only when an operator signed it: a
compact JWS (ES256, EC P-256) over the policy's canonical JSON, checked
against the public keys of ``[korora] policy_signing_keys``. Whoever can
write the verifier's database cannot sign, so cannot slip in a version
that allows their own PCR values.
"""

import collections
import dataclasses
import hashlib
import json
import os
import threading

import jwt

from korora_nova.attestation import canonical
from korora_nova.attestation import es256_keys
from korora_nova.attestation import pcr_values
from korora_nova.attestation import verdict
from korora_nova import exception

MAX_POLICY_FILE = 1024 * 1024
MAX_VALUES_PER_PCR = 4096
MAX_VERSION = 2 ** 31 - 1     # a SQL INTEGER on every backend
# base64url of the largest policy, a header and a P-256 signature.
MAX_SIGNATURE = MAX_POLICY_FILE * 4 // 3 + 4096
ALGORITHM = 'ES256'
JWS_TYPE = 'korora-policy+jws'
# Policy versions verified already (verified()): a verifier holds a few
# policies with a few active versions each.
VERIFIED_CACHE_SIZE = 256


@dataclasses.dataclass(frozen=True)
class ReferencePolicy:
    name: str
    version: int
    allowed: dict      # {(bank, index): frozenset of digests}

    @property
    def label(self):
        return '%s v%d' % (self.name, self.version)

    def appraise(self, selection, values):
        """Reasons the values break this policy (none if they do not)."""
        covered = set(selection)
        reasons = []
        for (bank, index), allowed in sorted(self.allowed.items()):
            if (bank, index) not in covered:
                reasons.append(verdict.Reason(
                    verdict.PCR_POLICY,
                    'PCR %s:%d is required by policy %s but the quote does '
                    'not cover it' % (bank, index, self.label)))
                continue
            value = values[bank][index]
            if value not in allowed:
                reasons.append(verdict.Reason(
                    verdict.PCR_POLICY,
                    'PCR %s:%d = %s: not allowed by policy %s'
                    % (bank, index, value.hex(), self.label)))
        return reasons

    def to_json(self):
        pcrs = {}
        for (bank, index), allowed in sorted(self.allowed.items()):
            pcrs.setdefault(bank, {})[str(index)] = sorted(
                v.hex() for v in allowed)
        return {'name': self.name, 'version': self.version, 'pcrs': pcrs}


def from_json(document):
    """Build a policy from its JSON form (already decoded)."""
    if not isinstance(document, dict):
        raise exception.PolicyError('a policy is a JSON object')
    name = document.get('name')
    version = document.get('version', 1)
    banks = document.get('pcrs')
    # The name goes into every message about the policy: one line.
    if not isinstance(name, str) or not name.strip() or len(name) > 255 or (
            not name.isprintable()):
        raise exception.PolicyError(
            'a policy needs a "name" (printable text, at most 255 '
            'characters)')
    if isinstance(version, bool) or not isinstance(version, int) or not (
            1 <= version <= MAX_VERSION):
        raise exception.PolicyError(
            'policy %s: "version" must be a whole number from 1 to %d'
            % (name, MAX_VERSION))
    if not isinstance(banks, dict) or not banks:
        raise exception.PolicyError(
            'policy %s: "pcrs" must map banks to PCRs to allowed values'
            % name)
    allowed = {}
    for bank, pcrs in banks.items():
        size = pcr_values.DIGEST_SIZES.get(bank)
        if size is None or not isinstance(pcrs, dict):
            raise exception.PolicyError(
                'policy %s: unknown PCR bank %r (use one of %s)'
                % (name, bank, ', '.join(sorted(pcr_values.DIGEST_SIZES))))
        if not pcrs:
            # An empty bank would make a policy that allows everything.
            raise exception.PolicyError(
                'policy %s: bank %s names no PCR' % (name, bank))
        for index, values in pcrs.items():
            key = (bank, _index(name, bank, index))
            allowed[key] = _digests(name, bank, index, values, size)
    return ReferencePolicy(name.strip(), version, allowed)


def _index(name, bank, index):
    number = pcr_values.pcr_index(index)
    if number is None:
        raise exception.PolicyError(
            'policy %s: %s PCR %r is not an index from 0 to %d'
            % (name, bank, index, pcr_values.MAX_PCR_INDEX))
    return number


def _digests(name, bank, index, values, size):
    if not isinstance(values, list) or not values or (
            len(values) > MAX_VALUES_PER_PCR):
        raise exception.PolicyError(
            'policy %s: %s PCR %s needs a list of 1 to %d allowed values'
            % (name, bank, index, MAX_VALUES_PER_PCR))
    digests = set()
    for value in values:
        try:
            digest = bytes.fromhex(value)
        except (TypeError, ValueError):
            digest = b''
        if len(digest) != size:
            raise exception.PolicyError(
                'policy %s: %s PCR %s: %r is not a %d-byte hex digest'
                % (name, bank, index, value, size))
        digests.add(digest)
    return frozenset(digests)


def loads(text):
    if len(text) > MAX_POLICY_FILE:
        raise exception.PolicyError(
            'policy is %d bytes; at most %d are accepted'
            % (len(text), MAX_POLICY_FILE))
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise exception.PolicyError('policy is not valid JSON: %s' % error)
    return from_json(document)


def load(path):
    try:
        with open(path, 'rb') as stream:
            text = stream.read(MAX_POLICY_FILE + 1)
    except OSError as error:
        raise exception.PolicyError(
            'cannot read policy file %s: %s' % (path, error.strerror))
    return loads(text)


def from_values(name, version, values):
    """A policy that allows exactly the given PCR values."""
    return ReferencePolicy(name, version, {
        (bank, index): frozenset([digest])
        for bank, pcrs in values.items() for index, digest in pcrs.items()})


# Operator signatures

def key_id(public_key):
    """An operator key's id (its RFC 7638 thumbprint, the JWS kid)."""
    return es256_keys.key_id(public_key)


def load_signing_key(path):
    """The operator's private key (PEM, unencrypted, EC P-256)."""
    return es256_keys.load_private_key(path, 'signing key',
                                       exception.SigningKeyError,
                                       owner_only=False)


def load_public_key(path):
    return es256_keys.load_public_key(path, 'policy signing key',
                                      exception.SigningKeyError)


# {path: (file's stamp, key id, public key)}
_trusted_cache = {}


def trusted_keys(paths):
    """{key id: public key} of [korora] policy_signing_keys.

    Files are read again only when they change, so key rotation needs no
    restart. Raises SigningKeyError naming an unusable file.
    """
    keys = {}
    for path in paths or ():
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        cached = _trusted_cache.get(path)
        if cached is None or stamp is None or cached[0] != stamp:
            public_key = load_public_key(path)
            cached = (stamp, key_id(public_key), public_key)
            _trusted_cache[path] = cached
        keys[cached[1]] = cached[2]
    return keys


def canonical_payload(reference):
    """The bytes an operator signs: the policy's canonical JSON."""
    return canonical.canonical(reference.to_json()).encode('ascii')


def sign(reference, signing_key):
    """The compact JWS (ES256) of an operator over reference."""
    return jwt.api_jws.encode(
        canonical_payload(reference), signing_key, algorithm=ALGORITHM,
        headers={'kid': key_id(signing_key.public_key()),
                 'typ': JWS_TYPE})


def _label(name, version):
    return 'policy %s version %s' % (name, version)


def _unsigned(name, version, why):
    return exception.PolicySignatureError(
        '%s: not signed by a trusted operator key (%s)'
        % (_label(name, version), why))


def _header(name, version, signature):
    if not isinstance(signature, str) or not signature:
        raise _unsigned(name, version, 'it has no signature: import it '
                        'with "korora-manage policy import --signing-key"')
    if len(signature) > MAX_SIGNATURE:
        raise _unsigned(name, version, 'its signature is larger than %d '
                        'bytes' % MAX_SIGNATURE)
    try:
        header = jwt.get_unverified_header(signature)
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise _unsigned(name, version, 'its signature is malformed: %s'
                        % error)
    if header.get('alg') != ALGORITHM:
        raise _unsigned(name, version, 'its signature uses %r, not %s'
                        % (header.get('alg'), ALGORITHM))
    return header


def _signed_payload(name, version, signature, keys):
    header = _header(name, version, signature)
    if not keys:
        raise _unsigned(name, version, '[korora] policy_signing_keys lists '
                        'no key')
    for key in keys.values():
        try:
            return jwt.api_jws.decode(signature, key,
                                      algorithms=[ALGORITHM])
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise _unsigned(name, version, 'its signature is malformed: %s'
                            % error)
    raise _unsigned(name, version, 'signed by key %s, which [korora] '
                    'policy_signing_keys does not list'
                    % str(header.get('kid', 'unknown'))[:64])


_verified_cache = collections.OrderedDict()
_verified_lock = threading.Lock()


def _digest(text):
    return hashlib.sha256(text.encode('utf-8', 'surrogatepass')).digest()


def verified(name, version, document, signature, keys):
    """The ReferencePolicy a stored version holds, if a trusted operator
    key signed exactly it; PolicySignatureError with the reason if not.

    name, version: the row's; document: its stored JSON text; keys: as
    trusted_keys() gives them.

    The verifier asks this of every active version at every attestation,
    and a signature check costs several appraisals, so versions that
    verified are remembered by everything the answer depends on: the
    row's name, version, document and signature, and the trusted key ids
    (thumbprints of the keys). A changed or re-signed row, or a key no
    longer trusted, is verified afresh; a refusal is never remembered.
    """
    if not all(isinstance(field, str)
               for field in (name, document, signature)) or (
            not isinstance(version, int)):
        return _verified(name, version, document, signature, keys)
    cache_key = (name, version, _digest(document), _digest(signature),
                 frozenset(keys))
    with _verified_lock:
        reference = _verified_cache.get(cache_key)
        if reference is not None:
            _verified_cache.move_to_end(cache_key)
            return reference
    reference = _verified(name, version, document, signature, keys)
    with _verified_lock:
        _verified_cache[cache_key] = reference
        while len(_verified_cache) > VERIFIED_CACHE_SIZE:
            _verified_cache.popitem(last=False)
    return reference


def _verified(name, version, document, signature, keys):
    payload = _signed_payload(name, version, signature, keys)
    stored = loads(document)
    if payload != canonical_payload(stored):
        raise exception.PolicySignatureError(
            '%s: its content differs from what the operator signed (it '
            'was changed after signing)' % _label(name, version))
    if (stored.name, stored.version) != (name, version):
        raise exception.PolicySignatureError(
            '%s: the operator signed it as policy %s version %d'
            % (_label(name, version), stored.name, stored.version))
    return stored
