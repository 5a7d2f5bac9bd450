"""The attestation key (AK): a restricted signing key in the endorsement
hierarchy, created once and kept at a persistent handle.

The AK is a primary key of the endorsement hierarchy, as the TCG's
"TPM 2.0 Keys for Device Identity and Attestation" makes the IAK: it
signs only structures the TPM itself produced (restricted), never leaves
the TPM (fixedTPM) and its link to the certified EK is proven to a
verifier with TPM2_ActivateCredential.
"""

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_RC
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.types import TPM2B_ENCRYPTED_SECRET
from tpm2_pytss.types import TPM2B_ID_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC

from korora_nova import exception
from korora_nova.tpm import connection as tpm_connection
from korora_nova.tpm import endorsement

AK_ATTRIBUTES = (TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT
                 | TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
                 | TPMA_OBJECT.SENSITIVEDATAORIGIN
                 | TPMA_OBJECT.USERWITHAUTH)

# [korora] ak_algorithm -> tpm2-pytss template string.
_TEMPLATES = {
    'ecdsa-p256-sha256': 'ecc256:ecdsa-sha256:null',
    'rsassa-2048-sha256': 'rsa2048:rsassa-sha256:null',
    'rsapss-2048-sha256': 'rsa2048:rsapss-sha256:null',
}


def ak_template(algorithm):
    try:
        spec = _TEMPLATES[algorithm]
    except KeyError:
        raise exception.ConfigurationError(
            'unknown attestation key algorithm %r; choose one of %s'
            % (algorithm, ', '.join(sorted(_TEMPLATES))))
    return TPM2B_PUBLIC.parse(spec, objectAttributes=AK_ATTRIBUTES)


class AttestationKey:
    """The AK of one TPM, at its persistent handle."""

    def __init__(self, connection, algorithm, persistent_handle):
        self.connection = connection
        self.algorithm = algorithm
        self.persistent_handle = persistent_handle
        self._public = None
        self._esys = (None, None)   # (ESAPI context, its handle of the AK)

    @property
    def public(self):
        """Marshalled TPM2B_PUBLIC of the AK (creating the AK if needed)."""
        if self._public is None:
            with self.connection.esapi() as ectx:
                self.handle(ectx)
        return self._public

    def handle(self, ectx):
        """ESYS handle of the AK, for commands that sign with it."""
        context, handle = self._esys
        if context is not ectx:
            handle, public = self._load_or_create(ectx)
            self._esys = (ectx, handle)
            self._public = public.marshal()
        return handle

    def _load_or_create(self, ectx):
        try:
            handle = ectx.tr_from_tpmpublic(self.persistent_handle)
        except TSS2_Exception as error:
            if error.rc & 0xFF != TPM2_RC.HANDLE & 0xFF:
                raise
            return self._create(ectx)
        public, _, _ = ectx.read_public(handle)
        expected = ak_template(self.algorithm).publicArea
        found = public.publicArea
        if (found.type != expected.type
                or found.objectAttributes != expected.objectAttributes):
            raise exception.TPMError(
                'persistent handle 0x%08x holds a key that is not a %s '
                'attestation key; free it or set [korora] '
                'ak_persistent_handle to an unused handle'
                % (self.persistent_handle, self.algorithm))
        return handle, public

    def _create(self, ectx):
        transient, public, _, _, _ = ectx.create_primary(
            None, ak_template(self.algorithm), ESYS_TR.ENDORSEMENT)
        try:
            handle = ectx.evict_control(ESYS_TR.OWNER, transient,
                                        self.persistent_handle)
        finally:
            ectx.flush_context(transient)
        return handle, public

    def activate_credential(self, ek_types, credential_blob,
                            encrypted_secret):
        """Answer a verifier's MakeCredential challenge (host side).

        The TPM releases the secret only if the AK named in the challenge
        is loaded in the same TPM as the EK it was encrypted to.
        """
        blob, _ = TPM2B_ID_OBJECT.unmarshal(credential_blob)
        secret, _ = TPM2B_ENCRYPTED_SECRET.unmarshal(encrypted_secret)
        with self.connection.esapi() as ectx:
            ak_handle = self.handle(ectx)
            ek_handle, _ = endorsement.load_ek(ectx, ek_types)
            session = endorsement.endorsement_policy_session(ectx)
            try:
                released = ectx.activate_credential(
                    ak_handle, ek_handle, blob, secret,
                    session1=ESYS_TR.PASSWORD, session2=session)
            finally:
                tpm_connection.flush(ectx, session, ek_handle)
        return bytes(released)
