"""Keys made for one use and certified by the AK (TPM2_Certify).

A verifier that has attested the AK can trust a certified key to live in
the same TPM: it then encrypts to it, knowing only that TPM can decrypt.
"""

import dataclasses
import os

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC
from tpm2_pytss.types import TPMT_SIG_SCHEME

from korora_nova.attestation import evidence
from korora_nova import exception
from korora_nova.tpm import connection as tpm_connection

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


def create_certified_storage_key(connection, attestation_key, nonce,
                                 unique=None):
    """Create a fresh ECC storage key in the NULL hierarchy, certified
    (with unique: the same key again, certified anew).

    Keys of the NULL hierarchy vanish at the TPM's next reset, so a
    migration key cannot outlive the host's current boot.
    """
    if not isinstance(nonce, bytes) or not (
            0 < len(nonce) <= evidence.MAX_NONCE_SIZE):
        raise exception.EvidenceError(
            'a nonce is 1 to %d bytes' % evidence.MAX_NONCE_SIZE)
    if unique is None:
        unique = os.urandom(UNIQUE_SIZE)
    with connection.esapi() as ectx:
        handle, public, _, _, _ = ectx.create_primary(
            None, storage_key_template(unique), ESYS_TR.NULL)
        try:
            attested, signature = ectx.certify(
                handle, attestation_key.handle(ectx), nonce,
                TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL))
        finally:
            tpm_connection.flush(ectx, handle)
    return CertifiedKey(public.marshal(), bytes(attested),
                        signature.marshal(), unique)


def load_storage_key(ectx, unique):
    """Load the certified key again; the caller flushes the handle."""
    handle, _, _, _, _ = ectx.create_primary(
        None, storage_key_template(unique), ESYS_TR.NULL)
    return handle
