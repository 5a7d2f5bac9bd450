"""Reading, extending and quoting PCRs (host side)."""

import hashlib

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_CAP
from tpm2_pytss.constants import TPM2_PT_PCR
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPMT_SIG_SCHEME
from tpm2_pytss.types import TPML_DIGEST_VALUES
from tpm2_pytss.types import TPMT_HA

from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova import exception

# TPM2_PCR_Read returns at most 8 digests per call (TPML_DIGEST).
_READ_CHUNK = pcr_values.MAX_DIGESTS_PER_LIST


def read_pcrs(connection, selection, wait=True):
    """Read the selected PCRs: {bank: {index: digest}} (wait: as
    TPMConnection.esapi)."""
    values = {}
    with connection.esapi(wait=wait) as ectx:
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


def pcr_update_counter(connection, selection, wait=True):
    """The TPM's PCR update counter, read with one PCR of selection.

    The counter moves with every extend of any PCR, so reading it is
    how a watch learns that PCRs changed in one TPM command instead of
    one per eight PCRs. wait=False: exception.TPMBusy rather than wait
    for another user of the TPM.
    """
    with connection.esapi(wait=wait) as ectx:
        counter, _, _ = ectx.pcr_read(pcr_values.to_tpml(selection[:1]))
    return int(counter)


def uncounted_pcrs(connection, selection):
    """The PCRs of selection whose extends leave the update counter as
    it is (PC Client TPMs: 16 and 21 to 23): a watch must read them.
    All of selection when the TPM does not say."""
    with connection.esapi() as ectx:
        _, data = ectx.get_capability(TPM2_CAP.PCR_PROPERTIES,
                                      TPM2_PT_PCR.NO_INCREMENT, 1)
    found = data.data.pcrProperties
    if found.count < 1 or found.pcrProperty[0].tag != (
            TPM2_PT_PCR.NO_INCREMENT):
        return list(selection)
    bits = bytes(found.pcrProperty[0].pcrSelect)[
        :found.pcrProperty[0].sizeofSelect]
    return [(bank, index) for bank, index in selection
            if index // 8 < len(bits) and bits[index // 8] >> index % 8 & 1]


def quote(connection, attestation_key, selection, nonce, known_values=None):
    """Quote the selected PCRs with the AK over the verifier's nonce.

    known_values: the PCR values the caller read last. If the digest the
    TPM quoted is theirs, they are the values reported and no PCR is read
    (a quote is one TPM command); if not, the PCRs are read right after
    the quote, and if one changed in between, the verifier sees a digest
    mismatch and asks again.
    """
    if not isinstance(nonce, bytes) or not (
            0 < len(nonce) <= evidence.MAX_NONCE_SIZE):
        raise exception.EvidenceError(
            'a nonce is 1 to %d bytes' % evidence.MAX_NONCE_SIZE)
    with connection.esapi() as ectx:
        attested, signature = ectx.quote(
            attestation_key.handle(ectx), pcr_values.to_tpml(selection),
            nonce, TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL))
        message, signed = bytes(attested), signature.marshal()
        if _quoted(message, signed, known_values):
            values = {}
            for bank, index in selection:
                values.setdefault(bank, {})[index] = known_values[bank][index]
        else:
            values = read_pcrs(connection, selection)
    return evidence.QuoteEvidence(message, signed, values)


def _quoted(message, signature, values):
    """True if values are what the quote signed (the TPM's own output,
    read back on the host: nothing here is a verdict)."""
    if not values:
        return False
    attested = evidence.parse_attestation(message)
    hash_name = pcr_values.BANKS.get(
        evidence.parse_signature(signature).hash_alg)
    if hash_name is None or any(index not in values.get(bank, {})
                                for bank, index in attested.pcr_selection):
        return False
    return attested.pcr_digest == pcr_values.quoted_digest(
        attested.pcr_selection, values, hash_name)
