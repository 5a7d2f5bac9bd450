"""Sealing secrets to PCR values (TPM2_Create with a PolicyPCR policy).

A sealed secret can be unsealed only by this TPM and only while the
selected PCRs hold the values they held at sealing: a host whose measured
software changed cannot read it.
"""

import dataclasses

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPM2_RC
from tpm2_pytss.constants import TPM2_SE
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PRIVATE
from tpm2_pytss.types import TPM2B_PUBLIC
from tpm2_pytss.types import TPM2B_SENSITIVE_CREATE
from tpm2_pytss.types import TPMS_SENSITIVE_CREATE
from tpm2_pytss.types import TPMT_SYM_DEF

from korora_nova.attestation import pcr_values
from korora_nova import exception
from korora_nova.tpm import connection as tpm_connection

MAX_SECRET_SIZE = 128       # TPM2B_SENSITIVE_DATA: MAX_SYM_DATA
SRK_ATTRIBUTES = (
    TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.NODA)
SEALED_ATTRIBUTES = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT


@dataclasses.dataclass(frozen=True)
class SealedBlob:
    public: bytes       # marshalled TPM2B_PUBLIC of the sealed object
    private: bytes      # marshalled TPM2B_PRIVATE (encrypted by the SRK)
    selection: tuple    # ((bank, index), ...) the policy binds to


def _storage_root(ectx):
    """The owner hierarchy's storage root key, re-derived from its seed."""
    template = TPM2B_PUBLIC.parse('ecc256:aes128cfb',
                                  objectAttributes=SRK_ATTRIBUTES)
    handle, _, _, _, _ = ectx.create_primary(None, template, ESYS_TR.OWNER)
    return handle


def _pcr_policy(ectx, selection, session_type):
    session = ectx.start_auth_session(
        ESYS_TR.NONE, ESYS_TR.NONE, session_type,
        TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256)
    try:
        ectx.policy_pcr(session, b'', pcr_values.to_tpml(selection))
    except Exception:
        tpm_connection.flush(ectx, session)
        raise
    return session


def seal(connection, secret, selection):
    """Seal secret to the current values of the selected PCRs."""
    if not isinstance(secret, bytes) or not 0 < len(secret) <= (
            MAX_SECRET_SIZE):
        raise exception.TPMError(
            'a sealed secret is 1 to %d bytes' % MAX_SECRET_SIZE)
    with connection.esapi() as ectx:
        trial = _pcr_policy(ectx, selection, TPM2_SE.TRIAL)
        try:
            policy = ectx.policy_get_digest(trial)
        finally:
            tpm_connection.flush(ectx, trial)
        template = TPM2B_PUBLIC.parse(
            'keyedhash', objectAttributes=SEALED_ATTRIBUTES)
        template.publicArea.authPolicy = policy
        sensitive = TPM2B_SENSITIVE_CREATE(
            TPMS_SENSITIVE_CREATE(data=secret))
        srk = _storage_root(ectx)
        try:
            private, public, _, _, _ = ectx.create(srk, sensitive, template)
        finally:
            tpm_connection.flush(ectx, srk)
    return SealedBlob(public.marshal(), private.marshal(), tuple(selection))


def unseal(connection, blob):
    """Unseal; fails with TPMError if the PCRs no longer match."""
    public, _ = TPM2B_PUBLIC.unmarshal(blob.public)
    private, _ = TPM2B_PRIVATE.unmarshal(blob.private)
    with connection.esapi() as ectx:
        srk = _storage_root(ectx)
        sealed = session = None
        try:
            sealed = ectx.load(srk, private, public)
            session = _pcr_policy(ectx, list(blob.selection),
                                  TPM2_SE.POLICY)
            return bytes(ectx.unseal(sealed, session1=session))
        except TSS2_Exception as error:
            if error.error == TPM2_RC.POLICY_FAIL:
                raise exception.TPMError(
                    'the sealed secret cannot be unsealed: PCRs %s no longer '
                    'hold the values it was sealed to'
                    % ', '.join('%s:%d' % p for p in blob.selection))
            raise
        finally:
            tpm_connection.flush(ectx, *[h for h in (session, sealed, srk)
                                         if h is not None])
