"""Judging a quote or a key certification against an enrolled AK.

Fail closed: every check that cannot be made counts against the evidence,
and every failed check is reported, so an operator sees all that is wrong
at once. No exception other than the project's own leaves this module.
"""

import functools
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric import utils
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from tpm2_pytss.constants import TPM2_ALG

from korora_nova.attestation import evidence as evidence_module
from korora_nova.attestation import pcr_values as pcr_module
from korora_nova.attestation import verdict
from korora_nova import exception

MAX_PUBLIC_KEY_SIZE = 16 * 1024
# AKs kept loaded, by their bytes. A verifier attests its whole fleet in
# turn (up to 10,000 hosts), and an LRU smaller than the fleet would
# have dropped each key before its host comes round again.
AK_CACHE_SIZE = 16384

# Signature hashes accepted from a TPM; SHA-1 is not.
_SIGNATURE_HASHES = {
    TPM2_ALG.SHA256: 'sha256',
    TPM2_ALG.SHA384: 'sha384',
    TPM2_ALG.SHA512: 'sha512',
}
_KEY_TYPES = {
    TPM2_ALG.ECDSA: ec.EllipticCurvePublicKey,
    TPM2_ALG.RSASSA: rsa.RSAPublicKey,
    TPM2_ALG.RSAPSS: rsa.RSAPublicKey,
}


def load_public_key(data):
    """An AK public key from PEM, DER or a marshalled TPM2B_PUBLIC."""
    if not isinstance(data, (bytes, bytearray)) or not data or (
            len(data) > MAX_PUBLIC_KEY_SIZE):
        raise exception.EvidenceError(
            'AK public key must be 1 to %d bytes' % MAX_PUBLIC_KEY_SIZE)
    return _load_public_key(bytes(data))


@functools.lru_cache(maxsize=AK_CACHE_SIZE)
def _load_public_key(data):
    """Cached by the key's bytes: a changed AK is other bytes, so it is
    loaded afresh; a key that does not load raises, and is not cached.
    Keys are immutable, so one object serves every caller."""
    loaders = (serialization.load_pem_public_key,
               serialization.load_der_public_key, _load_tpm2b_public)
    for loader in loaders:
        try:
            key = loader(data)
        except (ValueError, TypeError, RuntimeError, UnsupportedAlgorithm,
                exception.EvidenceError):
            continue
        if isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
            return key
    raise exception.EvidenceError(
        'AK public key is neither a PEM or DER RSA/EC public key nor a '
        'TPM2B_PUBLIC')


def _load_tpm2b_public(data):
    public = evidence_module.parse_public(data, 'AK public key')
    return serialization.load_der_public_key(public.to_der())


class _Checks:
    """Collects reasons, prefixed with the host's name when known."""

    def __init__(self, host):
        self.host = host
        self.reasons = []

    def fail(self, code, message):
        if self.host:
            message = '%s: %s' % (self.host, message)
        self.reasons.append(verdict.Reason(code, message))


_HASHES = {'sha256': hashes.SHA256(), 'sha384': hashes.SHA384(),
           'sha512': hashes.SHA512()}
_ECDSA = {name: ec.ECDSA(algorithm) for name, algorithm in _HASHES.items()}
_PKCS1 = padding.PKCS1v15()
# A TPM salts RSA-PSS with the digest size or the largest size the key
# allows (TPM 2.0 Part 1, B.7): accept either.
_PSS = {name: padding.PSS(mgf=padding.MGF1(algorithm),
                          salt_length=padding.PSS.AUTO)
        for name, algorithm in _HASHES.items()}


def _check_signature(checks, signature_bytes, message, ak_key):
    """Verify the TPMT_SIGNATURE; return its hash name or None."""
    try:
        signature = evidence_module.parse_signature(signature_bytes)
    except exception.EvidenceError as error:
        checks.fail(verdict.MALFORMED, str(error))
        return None
    key_type = _KEY_TYPES.get(signature.scheme)
    hash_name = _SIGNATURE_HASHES.get(signature.hash_alg)
    if key_type is None or hash_name is None:
        checks.fail(verdict.UNSUPPORTED,
                    'signature scheme 0x%04x with hash 0x%04x is not '
                    'accepted (ECDSA, RSASSA or RSA-PSS with SHA-256 or '
                    'stronger)' % (signature.scheme, signature.hash_alg))
        return None
    if not isinstance(ak_key, key_type):
        checks.fail(verdict.SIGNATURE,
                    'signature is %s but the enrolled AK is a %s key'
                    % (_scheme_name(signature.scheme),
                       'RSA' if isinstance(ak_key, rsa.RSAPublicKey)
                       else 'EC'))
        return None
    try:
        if signature.scheme == TPM2_ALG.ECDSA:
            r, s = (int.from_bytes(v, 'big') for v in signature.values)
            ak_key.verify(utils.encode_dss_signature(r, s), message,
                          _ECDSA[hash_name])
        else:
            pad = _PKCS1 if signature.scheme == TPM2_ALG.RSASSA else (
                _PSS[hash_name])
            ak_key.verify(signature.values[0], message, pad,
                          _HASHES[hash_name])
    except (InvalidSignature, ValueError):
        checks.fail(verdict.SIGNATURE,
                    'signature does not verify with the enrolled AK')
        return None
    return hash_name


def _scheme_name(alg):
    return {TPM2_ALG.ECDSA: 'ECDSA', TPM2_ALG.RSASSA: 'RSASSA',
            TPM2_ALG.RSAPSS: 'RSA-PSS'}.get(alg, hex(int(alg)))


def _check_nonce(checks, attestation, expected_nonce):
    if not hmac.compare_digest(attestation.extra_data, expected_nonce):
        checks.fail(verdict.NONCE,
                    'nonce mismatch: stale or replayed evidence (expected '
                    '%s, got %s)' % (expected_nonce.hex(),
                                     attestation.extra_data.hex() or
                                     'none'))


def _check_clock(checks, attestation, previous_clock):
    """A known TPM's reset count and clock never go backwards."""
    if previous_clock is None:
        return
    now = attestation.clock_info
    if now.reset_count < previous_clock.reset_count or (
            now.reset_count == previous_clock.reset_count
            and now.clock < previous_clock.clock):
        checks.fail(verdict.CLOCK,
                    'TPM clock went backwards (reset count %d -> %d, clock '
                    '%d -> %d ms): replayed evidence or a rolled-back TPM'
                    % (previous_clock.reset_count, now.reset_count,
                       previous_clock.clock, now.clock))


def _check_pcr_values(checks, attestation, values, hash_name):
    """True if the reported values are exactly what the quote signed."""
    selection = attestation.pcr_selection
    if not selection:
        checks.fail(verdict.MALFORMED, 'the quote covers no PCR')
        return False
    missing = [p for p in selection
               if p[1] not in (values or {}).get(p[0], {})]
    if missing:
        checks.fail(verdict.PCR_DIGEST,
                    'PCR values missing for %s, which the quote covers'
                    % ', '.join('%s:%d' % p for p in missing))
        return False
    for bank, index in selection:
        size = pcr_module.DIGEST_SIZES[bank]
        if len(values[bank][index]) != size:
            checks.fail(verdict.MALFORMED,
                        'PCR %s:%d value is %d bytes, not %d'
                        % (bank, index, len(values[bank][index]), size))
            return False
    if hash_name is None:
        return False
    digest = pcr_module.quoted_digest(selection, values, hash_name)
    if not hmac.compare_digest(digest, attestation.pcr_digest):
        checks.fail(verdict.PCR_DIGEST,
                    'PCR values do not match the digest the TPM quoted')
        return False
    return True


def appraise_quote(quote, ak_key, expected_nonce, policy=None,
                   previous_clock=None, host=None):
    """Judge a QuoteEvidence; always returns a Verdict.

    ak_key is the enrolled AK as a cryptography public key (see
    load_public_key); previous_clock the ClockInfo of this host's last
    accepted quote, if any.
    """
    checks = _Checks(host)
    label = policy.label if policy is not None else None
    try:
        attestation = evidence_module.parse_attestation(quote.message)
    except exception.EvidenceError as error:
        checks.fail(verdict.MALFORMED, str(error))
        return verdict.Verdict(False, False, tuple(checks.reasons), host,
                               label)
    if attestation.type != 'quote':
        checks.fail(verdict.WRONG_TYPE,
                    'evidence is a %s, not a quote' % attestation.type)
    hash_name = _check_signature(checks, quote.signature, quote.message,
                                 ak_key)
    _check_nonce(checks, attestation, expected_nonce)
    _check_clock(checks, attestation, previous_clock)
    values_genuine = (attestation.type == 'quote' and _check_pcr_values(
        checks, attestation, quote.pcr_values, hash_name))
    valid = not checks.reasons
    if policy is None:
        checks.fail(verdict.NO_POLICY,
                    'no reference policy: PCR values were not appraised')
    elif values_genuine:
        for reason in policy.appraise(attestation.pcr_selection,
                                      quote.pcr_values):
            checks.fail(reason.code, reason.message)
    trusted = valid and not checks.reasons
    quoted = None
    if values_genuine:
        quoted = {}
        for bank, index in attestation.pcr_selection:
            quoted.setdefault(bank, {})[index] = quote.pcr_values[bank][index]
    return verdict.Verdict(trusted, valid, tuple(checks.reasons), host,
                           label, attestation, quoted)


def appraise_certification(message, signature, ak_key, expected_nonce,
                           certified_public, host=None):
    """Judge a TPM2_Certify of another key by the AK.

    certified_public is the marshalled TPM2B_PUBLIC the host claims was
    certified; the attestation must name exactly that key.
    """
    checks = _Checks(host)
    try:
        attestation = evidence_module.parse_attestation(message)
    except exception.EvidenceError as error:
        checks.fail(verdict.MALFORMED, str(error))
        return verdict.Verdict(False, False, tuple(checks.reasons), host)
    if attestation.type != 'certify':
        checks.fail(verdict.WRONG_TYPE,
                    'evidence is a %s, not a key certification'
                    % attestation.type)
    _check_signature(checks, signature, message, ak_key)
    _check_nonce(checks, attestation, expected_nonce)
    try:
        public = evidence_module.parse_public(certified_public,
                                              'certified key')
    except exception.EvidenceError as error:
        checks.fail(verdict.MALFORMED, str(error))
    else:
        try:
            name = bytes(public.get_name())
        except (ValueError, TypeError):
            checks.fail(verdict.MALFORMED,
                        'certified key has no usable name algorithm')
        else:
            if not hmac.compare_digest(name, attestation.certified_name):
                checks.fail(verdict.CERTIFIED_KEY,
                            'the key presented is not the key the AK '
                            'certified')
    valid = not checks.reasons
    return verdict.Verdict(valid, valid, tuple(checks.reasons), host,
                           None, attestation)
