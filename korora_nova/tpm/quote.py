"""Reading, extending and quoting PCRs (host side)."""

import hashlib

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPMT_SIG_SCHEME
from tpm2_pytss.types import TPML_DIGEST_VALUES
from tpm2_pytss.types import TPMT_HA

from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova import exception

# TPM2_PCR_Read returns at most 8 digests per call (TPML_DIGEST).
_READ_CHUNK = pcr_values.MAX_DIGESTS_PER_LIST


def read_pcrs(connection, selection):
    """Read the selected PCRs: {bank: {index: digest}}."""
    values = {}
    with connection.esapi() as ectx:
        for start in range(0, len(selection), _READ_CHUNK):
            chunk = selection[start:start + _READ_CHUNK]
            requested = pcr_values.to_tpml(chunk)
            _, selected, digests = ectx.pcr_read(requested)
            if selected.marshal() != requested.marshal():
                raise exception.TPMError(
                    'the TPM did not return all of PCRs %s; is the bank '
                    'active?' % ', '.join('%s:%d' % pcr for pcr in chunk))
            for (bank, index), digest in zip(chunk, digests):
                values.setdefault(bank, {})[index] = bytes(digest)
    return values


def extend_pcr(connection, bank, index, data):
    """Extend PCR bank:index with the digest of data (a measurement)."""
    if bank not in pcr_values.BANK_IDS or not (
            0 <= index <= pcr_values.MAX_PCR_INDEX):
        raise exception.ConfigurationError(
            'cannot extend PCR %s:%s: no such PCR' % (bank, index))
    digest = hashlib.new(bank, data).digest()
    measurement = TPMT_HA(hashAlg=pcr_values.BANK_IDS[bank])
    setattr(measurement.digest, bank, digest)
    values = TPML_DIGEST_VALUES([measurement])
    with connection.esapi() as ectx:
        ectx.pcr_extend(ESYS_TR.PCR0 + index, values)
    return digest


def quote(connection, attestation_key, selection, nonce):
    """Quote the selected PCRs with the AK over the verifier's nonce.

    Returns QuoteEvidence with the values read right after the quote; if a
    PCR changed in between, the verifier sees a digest mismatch and asks
    again.
    """
    if not isinstance(nonce, bytes) or not (
            0 < len(nonce) <= evidence.MAX_NONCE_SIZE):
        raise exception.EvidenceError(
            'a nonce is 1 to %d bytes' % evidence.MAX_NONCE_SIZE)
    with connection.esapi() as ectx:
        attested, signature = ectx.quote(
            attestation_key.handle(ectx), pcr_values.to_tpml(selection),
            nonce, TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL))
        values = read_pcrs(connection, selection)
    return evidence.QuoteEvidence(bytes(attested), signature.marshal(),
                                  values)
