"""The endorsement key (EK): the TPM's identity, certified by its maker.

The EK is re-created from its standard template (TCG EK Credential
Profile); the same template always yields the same key, the one the
certificate in NV memory names.
"""

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPM2_SE
from tpm2_pytss.types import TPMT_SYM_DEF
from tpm2_pytss.utils import create_ek_template
from tpm2_pytss.utils import NVReadEK

from korora_nova.attestation import evidence
from korora_nova import exception
from korora_nova.tpm import connection as tpm_connection


def _template(ectx, ek_types):
    reader = NVReadEK(ectx)
    for ek_type in ek_types:
        try:
            certificate, template = create_ek_template(ek_type, reader)
        except (ValueError, TSS2_Exception):
            continue
        if certificate:
            return ek_type, bytes(certificate), template
    raise exception.EndorsementError(
        'the TPM holds no EK certificate of the types %s'
        % ', '.join(ek_types))


def read_endorsement(connection, ek_types):
    """Return the EK certificate and public key of the first known type."""
    with connection.esapi() as ectx:
        ek_type, certificate, template = _template(ectx, ek_types)
        handle, public = create_ek(ectx, template)
        tpm_connection.flush(ectx, handle)
    return evidence.Endorsement(ek_type, certificate, public.marshal())


def create_ek(ectx, template):
    """Load the EK from its template; the caller flushes the handle."""
    handle, public, _, _, _ = ectx.create_primary(
        None, template, ESYS_TR.ENDORSEMENT)
    return handle, public


def load_ek(ectx, ek_types):
    """Load the EK of the first type with a certificate."""
    _, _, template = _template(ectx, ek_types)
    return create_ek(ectx, template)


def endorsement_policy_session(ectx):
    """A policy session satisfying the low-range EK policy (policy A).

    Low-range EKs (EK-RSA2048, EK-ECC256) authorize use with
    PolicySecret(TPM_RH_ENDORSEMENT); the caller flushes the session.
    """
    session = ectx.start_auth_session(
        ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.POLICY,
        TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256)
    ectx.policy_secret(ESYS_TR.ENDORSEMENT, session, b'', b'', b'', 0)
    return session
