"""Evidence as it travels, and its parsing into plain values.

Parsing goes through libtss2-mu (tpm2-pytss's unmarshal functions); this
module bounds every input before handing it over, insists that a
structure uses up its whole buffer, and turns every parsing failure into
an EvidenceError.
"""

import dataclasses

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_GENERATED
from tpm2_pytss.constants import TPM2_ST
from tpm2_pytss.types import TPM2B_PUBLIC
from tpm2_pytss.types import TPMS_ATTEST
from tpm2_pytss.types import TPMT_SIGNATURE

from korora_nova.attestation import pcr_values
from korora_nova import exception

# Upper bounds on what a TPM can produce. TPMS_ATTEST of a quote is ~150
# bytes with 64-byte names and nonces; 2 KiB leaves room for every
# attestation type. A TPMT_SIGNATURE is at most ~520 bytes (RSA 4096).
MAX_ATTEST_SIZE = 2048
MAX_SIGNATURE_SIZE = 1024
MAX_NONCE_SIZE = 64         # TPM2B_DATA: sizeof(TPMU_HA)
MAX_PUBLIC_SIZE = 1024      # TPM2B_PUBLIC: ~360 bytes for RSA 2048

# What a broken buffer makes libtss2-mu or its Python wrapper raise.
PARSE_ERRORS = (TSS2_Exception, ValueError, TypeError, IndexError,
                OverflowError, RuntimeError, KeyError)


@dataclasses.dataclass(frozen=True)
class Endorsement:
    """What a host tells a verifier about its endorsement key (EK)."""

    ek_type: str           # e.g. "EK-RSA2048"
    certificate: bytes     # DER, as stored in the TPM's NV memory
    public: bytes          # marshalled TPM2B_PUBLIC of the EK


@dataclasses.dataclass(frozen=True)
class QuoteEvidence:
    """A quote as a host sends it: what tpm2_quote -m/-s and a PCR read
    produce."""

    message: bytes          # marshalled TPMS_ATTEST
    signature: bytes        # marshalled TPMT_SIGNATURE
    pcr_values: dict        # {bank: {index: digest}}


@dataclasses.dataclass(frozen=True)
class ClockInfo:
    clock: int
    reset_count: int
    restart_count: int
    safe: bool


@dataclasses.dataclass(frozen=True)
class Attestation:
    """The fields of a TPMS_ATTEST a verifier judges."""

    type: str                    # 'quote' or 'certify'
    qualified_signer: bytes
    extra_data: bytes            # the verifier's nonce
    clock_info: ClockInfo
    firmware_version: int
    pcr_selection: tuple = ()    # quote: ((bank, index), ...)
    pcr_digest: bytes = b''      # quote
    certified_name: bytes = b''  # certify: name of the certified key

    def to_json(self):
        info = {
            'type': self.type,
            'qualified_signer': self.qualified_signer.hex(),
            'nonce': self.extra_data.hex(),
            'clock': self.clock_info.clock,
            'reset_count': self.clock_info.reset_count,
            'restart_count': self.clock_info.restart_count,
            'safe': self.clock_info.safe,
            'firmware_version': '%016x' % self.firmware_version,
        }
        if self.type == 'quote':
            info['pcr_selection'] = ['%s:%d' % p for p in self.pcr_selection]
            info['pcr_digest'] = self.pcr_digest.hex()
        else:
            info['certified_name'] = self.certified_name.hex()
        return info


_TYPES = {TPM2_ST.ATTEST_QUOTE: 'quote', TPM2_ST.ATTEST_CERTIFY: 'certify'}


def bounded(name, data, limit):
    if not isinstance(data, (bytes, bytearray)):
        raise exception.EvidenceError('%s is not a byte string' % name)
    if not data:
        raise exception.EvidenceError('%s is empty' % name)
    if len(data) > limit:
        raise exception.EvidenceError(
            '%s is %d bytes; at most %d are accepted'
            % (name, len(data), limit))
    return bytes(data)


def _unmarshal_whole(cls, name, data):
    try:
        value, used = cls.unmarshal(data)
    except PARSE_ERRORS as error:
        raise exception.EvidenceError(
            '%s is not a valid %s: %s' % (name, cls.__name__, error))
    if used != len(data):
        raise exception.EvidenceError(
            '%s has %d bytes after its %s'
            % (name, len(data) - used, cls.__name__))
    return value


def parse_attestation(message):
    """Parse a marshalled TPMS_ATTEST of a quote or a certification."""
    message = bounded('attestation message', message, MAX_ATTEST_SIZE)
    attest = _unmarshal_whole(TPMS_ATTEST, 'attestation message', message)
    if attest.magic != TPM2_GENERATED.VALUE:
        raise exception.EvidenceError(
            'attestation message does not come from a TPM (magic 0x%08x)'
            % int(attest.magic))
    kind = _TYPES.get(attest.type)
    if kind is None:
        raise exception.EvidenceError(
            'attestation message is of type 0x%04x, neither a quote nor a '
            'certification' % int(attest.type))
    clock = attest.clockInfo
    fields = dict(
        type=kind,
        qualified_signer=bytes(attest.qualifiedSigner),
        extra_data=bytes(attest.extraData),
        clock_info=ClockInfo(int(clock.clock), int(clock.resetCount),
                             int(clock.restartCount), bool(clock.safe)),
        firmware_version=int(attest.firmwareVersion),
    )
    if kind == 'quote':
        quote = attest.attested.quote
        fields['pcr_selection'] = tuple(
            pcr_values.from_tpml(quote.pcrSelect))
        fields['pcr_digest'] = bytes(quote.pcrDigest)
    else:
        fields['certified_name'] = bytes(attest.attested.certify.name)
    return Attestation(**fields)


def parse_signature(signature):
    """Parse a marshalled TPMT_SIGNATURE."""
    signature = bounded('signature', signature, MAX_SIGNATURE_SIZE)
    return _unmarshal_whole(TPMT_SIGNATURE, 'signature', signature)


def parse_public(public, name='public key'):
    """Parse a marshalled TPM2B_PUBLIC (an AK, an EK, a certified key)."""
    public = bounded(name, public, MAX_PUBLIC_SIZE)
    return _unmarshal_whole(TPM2B_PUBLIC, name, public)
