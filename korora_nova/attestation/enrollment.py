"""Enrolling a host: proving that its AK lives in a TPM with a certified EK.

Verifier side, pure software. The verifier checks the EK certificate and
the AK's properties, then encrypts a random secret to the EK, bound to
the AK's name (TPM2_MakeCredential). Only the TPM holding both the EK and
that AK can release it with TPM2_ActivateCredential.
"""

import dataclasses
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import serialization
from oslo_log import log as logging
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.utils import make_credential

from korora_nova.attestation import ek_certificate
from korora_nova.attestation import evidence
from korora_nova import exception

LOG = logging.getLogger(__name__)

SECRET_SIZE = 32
AK_REQUIRED = (TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT
               | TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
               | TPMA_OBJECT.SENSITIVEDATAORIGIN)
_NAME_ALGS = (TPM2_ALG.SHA256, TPM2_ALG.SHA384, TPM2_ALG.SHA512)


@dataclasses.dataclass(frozen=True)
class Challenge:
    """Sent to the host; the secret stays with the verifier."""

    credential_blob: bytes      # marshalled TPM2B_ID_OBJECT
    encrypted_secret: bytes     # marshalled TPM2B_ENCRYPTED_SECRET
    secret: bytes = dataclasses.field(repr=False, default=b'')
    ak_name: bytes = b''        # the AK the challenge was made for


@dataclasses.dataclass(frozen=True)
class Identity:
    """What the verifier keeps of an enrolled host."""

    host: str
    ek_type: str
    ek_certificate: bytes   # DER
    ek_certificate_sha256: str
    ek_public: bytes        # marshalled TPM2B_PUBLIC
    ak_public: bytes        # marshalled TPM2B_PUBLIC
    ak_public_pem: bytes
    ak_name: str            # hex
    trust_on_first_use: bool


def check_ak(ak_public):
    """The AK must be a restricted, non-exportable signing key."""
    public = evidence.parse_public(ak_public, 'AK public key')
    area = public.publicArea
    missing = AK_REQUIRED & ~area.objectAttributes
    if missing or area.objectAttributes & TPMA_OBJECT.DECRYPT:
        raise exception.EnrollmentError(
            'the AK is not a restricted, TPM-bound signing key (attributes '
            '0x%08x)' % int(area.objectAttributes))
    if area.type not in (TPM2_ALG.ECC, TPM2_ALG.RSA):
        raise exception.EnrollmentError(
            'the AK is of type 0x%04x, not RSA or ECC' % int(area.type))
    if area.nameAlg not in _NAME_ALGS:
        raise exception.EnrollmentError(
            'the AK\'s name algorithm 0x%04x is weaker than SHA-256'
            % int(area.nameAlg))
    return public


def challenge(host, endorsement, ak_public, anchors,
              trust_on_first_use=False, intermediates=()):
    """Check what the host presented and make its credential challenge.

    endorsement is an evidence.Endorsement. Raises EndorsementError or
    EnrollmentError with the reason.
    """
    ek_public = evidence.parse_public(endorsement.public, 'EK public key')
    certificate = ek_certificate.load_certificate(endorsement.certificate)
    try:
        ek_der = ek_public.to_der()
    except (ValueError, TypeError) as error:
        raise exception.EndorsementError(
            '%s: the EK is not an RSA or NIST-curve key: %s' % (host, error))
    if not ek_certificate.public_key_matches(certificate, ek_der):
        raise exception.EndorsementError(
            '%s: the EK certificate is for another key than the TPM\'s EK'
            % host)
    if trust_on_first_use:
        LOG.warning('%s: enrolling without checking its EK certificate '
                    'chain (trust on first use): EK certificate sha256 %s',
                    host, hashlib.sha256(endorsement.certificate).hexdigest())
    else:
        try:
            ek_certificate.verify_chain(certificate, anchors, intermediates)
        except exception.EndorsementError as error:
            raise exception.EndorsementError('%s: %s' % (host, error))
    if not ek_public.publicArea.objectAttributes & TPMA_OBJECT.DECRYPT:
        raise exception.EndorsementError(
            '%s: the EK cannot decrypt: not an endorsement key' % host)
    ak = check_ak(ak_public)
    secret = os.urandom(SECRET_SIZE)
    name = ak.get_name()
    try:
        blob, encrypted = make_credential(ek_public, secret, name)
    except (ValueError, TypeError) as error:
        # tpm2-pytss refuses an EK whose scheme or hash it cannot use.
        raise exception.EndorsementError(
            '%s: no credential can be made for this EK: %s' % (host, error))
    return Challenge(blob.marshal(), encrypted.marshal(), secret,
                     bytes(name))


def finish(host, endorsement, ak_public, sent, answer,
           trust_on_first_use=False):
    """Compare the host's answer with the secret; return its Identity."""
    if not isinstance(answer, bytes) or not hmac.compare_digest(
            answer, sent.secret):
        raise exception.EnrollmentError(
            '%s: credential activation failed: the AK is not in the TPM '
            'that holds the certified EK' % host)
    ak = evidence.parse_public(ak_public, 'AK public key')
    if bytes(ak.get_name()) != sent.ak_name:
        raise exception.EnrollmentError(
            '%s: the AK presented is not the one the challenge was made '
            'for' % host)
    pem = serialization.load_der_public_key(ak.to_der()).public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return Identity(
        host=host,
        ek_type=endorsement.ek_type,
        ek_certificate=endorsement.certificate,
        ek_certificate_sha256=hashlib.sha256(
            endorsement.certificate).hexdigest(),
        ek_public=endorsement.public,
        ak_public=ak_public,
        ak_public_pem=pem,
        ak_name=bytes(ak.get_name()).hex(),
        trust_on_first_use=trust_on_first_use)
