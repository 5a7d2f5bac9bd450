"""Endorsement key certificates: is this EK a real TPM's, made by a maker
the operator trusts?

Every certificate in the operator's CA bundle is a trust anchor. A host
may also present intermediates (from its NV memory or its maker's site);
they are used to build the chain but trusted only through an anchor.
"""

import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from korora_nova import exception

MAX_CERTIFICATE_SIZE = 16 * 1024
MAX_BUNDLE_SIZE = 4 * 1024 * 1024
MAX_CHAIN_DEPTH = 6

# What cryptography raises for a malformed certificate. It parses lazily:
# a certificate that loads can still raise these when a field (times,
# names, extensions, the signature's algorithm) is first read.
MALFORMED = (ValueError, TypeError, UnsupportedAlgorithm,
             x509.InvalidVersion, x509.DuplicateExtension,
             x509.UnsupportedGeneralNameType)


def load_certificate(data):
    """An EK certificate from DER (as in NV memory) or PEM."""
    if not isinstance(data, (bytes, bytearray)) or not data or (
            len(data) > MAX_CERTIFICATE_SIZE):
        raise exception.EndorsementError(
            'EK certificate must be 1 to %d bytes' % MAX_CERTIFICATE_SIZE)
    data = bytes(data)
    loader = (x509.load_pem_x509_certificate
              if data.lstrip().startswith(b'-----BEGIN')
              else x509.load_der_x509_certificate)
    try:
        return loader(data)
    except MALFORMED as error:
        raise exception.EndorsementError(
            'EK certificate cannot be parsed: %s' % _one_line(error))


def load_bundle(path):
    """The trust anchors of a PEM bundle file."""
    try:
        with open(path, 'rb') as stream:
            data = stream.read(MAX_BUNDLE_SIZE + 1)
    except OSError as error:
        raise exception.ConfigurationError(
            'cannot read EK CA bundle %s: %s' % (path, error.strerror))
    if len(data) > MAX_BUNDLE_SIZE:
        raise exception.ConfigurationError(
            'EK CA bundle %s is larger than %d bytes'
            % (path, MAX_BUNDLE_SIZE))
    try:
        anchors = x509.load_pem_x509_certificates(data)
    except MALFORMED as error:
        raise exception.ConfigurationError(
            'EK CA bundle %s holds no usable PEM certificates: %s'
            % (path, _one_line(error)))
    return anchors


def _valid_now(certificate, now, what):
    if not (certificate.not_valid_before_utc <= now
            <= certificate.not_valid_after_utc):
        raise exception.EndorsementError(
            '%s (%s) is not valid at %s: valid from %s to %s'
            % (what, certificate.subject.rfc4514_string() or 'no subject',
               now.isoformat(), certificate.not_valid_before_utc.isoformat(),
               certificate.not_valid_after_utc.isoformat()))


def _is_ca(certificate):
    """A malformed certificate is no CA."""
    try:
        constraints = certificate.extensions.get_extension_for_class(
            x509.BasicConstraints).value
    except (x509.ExtensionNotFound,) + MALFORMED:
        return False
    return constraints.ca


def _issued_by(child, parent):
    """A signature that cannot be checked is not a parent's."""
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature,) + MALFORMED:
        return False
    return True


def verify_chain(certificate, anchors, intermediates=(), now=None):
    """The anchor certificate chains to; EndorsementError, and nothing
    else, when it does not."""
    try:
        return _verify_chain(certificate, anchors, intermediates, now)
    except MALFORMED as error:
        raise exception.EndorsementError(
            'EK certificate chain cannot be checked: a certificate is '
            'malformed: %s' % _one_line(error))


def _verify_chain(certificate, anchors, intermediates, now):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    _valid_now(certificate, now, 'EK certificate')
    current, depth = certificate, 0
    candidates = list(intermediates)
    while depth < MAX_CHAIN_DEPTH:
        for anchor in anchors:
            if _issued_by(current, anchor):
                _valid_now(anchor, now, 'EK CA certificate')
                return anchor
        for parent in candidates:
            if _is_ca(parent) and _issued_by(current, parent):
                _valid_now(parent, now, 'EK intermediate certificate')
                candidates.remove(parent)
                current, depth = parent, depth + 1
                break
        else:
            break
    raise exception.EndorsementError(
        'EK certificate (issuer %s) does not chain to a CA in the EK CA '
        'bundle' % (certificate.issuer.rfc4514_string() or 'unnamed'))


def public_key_matches(certificate, ek_public_der):
    """True if the certificate names the EK the TPM presented."""
    try:
        certified = certificate.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
    except MALFORMED as error:
        raise exception.EndorsementError(
            'EK certificate holds a key of an unsupported kind: %s'
            % _one_line(error))
    return certified == ek_public_der


def _one_line(error, limit=200):
    """cryptography's message, on one bounded line."""
    text = ' '.join(str(error).split()) or type(error).__name__
    return text[:limit]
