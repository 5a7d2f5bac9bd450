"""Keys made for one use and certified by the AK (TPM2_Certify).

A verifier that has attested the AK can trust a certified key to live in
the same TPM: it then encrypts to it, knowing only that TPM can decrypt.
"""

import dataclasses
import os

from oslo_log import log as logging
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC
from tpm2_pytss.types import TPMT_SIG_SCHEME

from korora_nova.attestation import evidence
from korora_nova import exception
from korora_nova.tpm import connection as tpm_connection

LOG = logging.getLogger(__name__)

UNIQUE_SIZE = 32

# A storage key: restricted decryption, the parent that TPM2_Import needs.
STORAGE_KEY_ATTRIBUTES = (
    TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH)


@dataclasses.dataclass(frozen=True)
class CertifiedKey:
    public: bytes       # marshalled TPM2B_PUBLIC of the new key
    attestation: bytes  # marshalled TPMS_ATTEST (type certify)
    signature: bytes    # marshalled TPMT_SIGNATURE by the AK
    unique: bytes       # recreates the same key (primary in NULL hierarchy)


def storage_key_template(unique):
    template = TPM2B_PUBLIC.parse('ecc256:aes128cfb',
                                  objectAttributes=STORAGE_KEY_ATTRIBUTES)
    template.publicArea.unique.ecc.x = unique
    return template


@dataclasses.dataclass(frozen=True)
class LoadedKey:
    """A storage key kept loaded in the TPM (create_loaded_key), so that
    certifying it and importing under it need no key generation."""
    handle: object      # its ESYS_TR in context
    context: object     # the ESAPI context (one link) that loaded it
    public: bytes       # marshalled TPM2B_PUBLIC
    unique: bytes       # recreates it when that link is gone


def _checked_nonce(nonce):
    if not isinstance(nonce, bytes) or not (
            0 < len(nonce) <= evidence.MAX_NONCE_SIZE):
        raise exception.EvidenceError(
            'a nonce is 1 to %d bytes' % evidence.MAX_NONCE_SIZE)
    return nonce


def _load(ectx, unique):
    handle, public, _, _, _ = ectx.create_primary(
        None, storage_key_template(unique), ESYS_TR.NULL)
    return LoadedKey(handle, ectx, public.marshal(), unique)


def _certify(ectx, key, attestation_key, nonce):
    attested, signature = ectx.certify(
        key.handle, attestation_key.handle(ectx), nonce,
        TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL))
    return CertifiedKey(key.public, bytes(attested), signature.marshal(),
                        key.unique)


def create_certified_storage_key(connection, attestation_key, nonce,
                                 unique=None):
    """Create a fresh ECC storage key in the NULL hierarchy, certified
    (with unique: the same key again, certified anew), then flushed.

    Keys of the NULL hierarchy vanish at the TPM's next reset, so a
    migration key cannot outlive the host's current boot.
    """
    _checked_nonce(nonce)
    with connection.esapi() as ectx:
        key = _load(ectx, unique or os.urandom(UNIQUE_SIZE))
        try:
            return _certify(ectx, key, attestation_key, nonce)
        finally:
            tpm_connection.flush(ectx, key.handle)


def create_loaded_key(connection, wait=True):
    """A fresh storage key, as create_certified_storage_key makes, left
    loaded: made ahead of a migration, it takes the key generation off
    the migration's path. The caller flushes it (release_key)."""
    with connection.esapi(wait=wait) as ectx:
        return _load(ectx, os.urandom(UNIQUE_SIZE))


def certify_loaded_key(connection, attestation_key, nonce, key):
    """(CertifiedKey, LoadedKey): key certified by the AK over nonce, in
    one TPM command while it is loaded; recreated from its unique first
    when it is not (the link was reopened, or the TPM restarted under
    the link and its handle is gone or names another object)."""
    _checked_nonce(nonce)
    with connection.esapi() as ectx:
        if key.context is ectx:
            try:
                made = _certify(ectx, key, attestation_key, nonce)
            except TSS2_Exception as error:
                LOG.info('a kept TPM key is gone (%s); making it again',
                         error)
            else:
                if _names(made):
                    return made, key
        key = _load(ectx, key.unique)
        return _certify(ectx, key, attestation_key, nonce), key


def _names(made):
    """True if the certification is of the key made.public describes."""
    try:
        name = evidence.parse_public(made.public).get_name()
        return bytes(name) == evidence.parse_attestation(
            made.attestation).certified_name
    except (exception.EvidenceError, ValueError, TypeError):
        return False


def release_key(connection, key, wait=True):
    """Flush a LoadedKey (nothing to do once its link is gone)."""
    with connection.esapi(wait=wait) as ectx:
        if key.context is ectx:
            tpm_connection.flush(ectx, key.handle)


def load_storage_key(ectx, unique):
    """Load the certified key again; the caller flushes the handle."""
    return _load(ectx, unique).handle
