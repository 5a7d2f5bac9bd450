"""Evidence as it travels, and its parsing into plain values.

libtss2-mu (tpm2-pytss's unmarshal functions) decides whether a structure
is well formed; this module bounds every input before handing it over,
insists that a structure uses up its whole buffer, turns every parsing
failure into an EvidenceError, and then reads the fields it needs from
the validated bytes (see _Reader for why).
"""

import dataclasses
import struct

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_ALG
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


def unmarshal_whole(cls, name, data):
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


class _Reader:
    """Reads big-endian TPM fields from bytes libtss2-mu already accepted.

    tpm2-pytss wraps every field access in new Python objects (about
    200 microseconds per quote, three times the signature check); reading
    the validated bytes directly costs a few microseconds. Each read is
    still bounded.
    """

    def __init__(self, data):
        self.data = data
        self.offset = 0

    def take(self, size):
        end = self.offset + size
        if end > len(self.data):
            raise exception.EvidenceError('structure ends early')
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def unpack(self, layout):
        return layout.unpack(self.take(layout.size))

    def sized(self):
        """A TPM2B: a 16-bit size, then that many bytes."""
        (size,) = self.unpack(_U16)
        return self.take(size)


_U16 = struct.Struct('>H')
_U32 = struct.Struct('>I')
_HEADER = struct.Struct('>IH')          # magic, type
_CLOCK = struct.Struct('>QIIBQ')        # clock info, firmware version
_SELECTION = struct.Struct('>HB')       # hash, sizeofSelect


def parse_attestation(message):
    """Parse a marshalled TPMS_ATTEST of a quote or a certification."""
    message = bounded('attestation message', message, MAX_ATTEST_SIZE)
    unmarshal_whole(TPMS_ATTEST, 'attestation message', message)
    reader = _Reader(message)
    magic, kind_code = reader.unpack(_HEADER)
    if magic != TPM2_GENERATED.VALUE:
        raise exception.EvidenceError(
            'attestation message does not come from a TPM (magic 0x%08x)'
            % magic)
    kind = _TYPES.get(kind_code)
    if kind is None:
        raise exception.EvidenceError(
            'attestation message is of type 0x%04x, neither a quote nor a '
            'certification' % kind_code)
    signer = reader.sized()
    extra_data = reader.sized()
    clock, resets, restarts, safe, firmware = reader.unpack(_CLOCK)
    fields = dict(type=kind, qualified_signer=signer, extra_data=extra_data,
                  clock_info=ClockInfo(clock, resets, restarts, bool(safe)),
                  firmware_version=firmware)
    if kind == 'quote':
        fields['pcr_selection'] = _selection(reader)
        fields['pcr_digest'] = reader.sized()
    else:
        fields['certified_name'] = reader.sized()
        reader.sized()                  # qualified name of the key
    return Attestation(**fields)


def _selection(reader):
    """A TPML_PCR_SELECTION as ((bank, index), ...), in quote order."""
    (count,) = reader.unpack(_U32)
    if count > pcr_values.MAX_BANKS:
        raise exception.EvidenceError(
            'PCR selection lists %d banks; at most %d are possible'
            % (count, pcr_values.MAX_BANKS))
    pairs = []
    for _ in range(count):
        alg, size = reader.unpack(_SELECTION)
        if size > pcr_values.MAX_SELECT_BYTES:
            raise exception.EvidenceError(
                'PCR selection of %d bytes; at most %d'
                % (size, pcr_values.MAX_SELECT_BYTES))
        bank = pcr_values.bank_name(alg)
        bits = int.from_bytes(reader.take(size), 'little')
        pairs.extend((bank, i) for i in range(size * 8) if bits >> i & 1)
    return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class Signature:
    """A TPMT_SIGNATURE's scheme, hash and signature values."""

    scheme: int             # TPM2_ALG: ECDSA, RSASSA, RSAPSS, ...
    hash_alg: int           # TPM2_ALG of the signed digest
    values: tuple           # ECDSA: (r, s); RSA: (signature,)


_SIGNATURE_HEADER = struct.Struct('>HH')   # sigAlg, hashAlg


def parse_signature(signature):
    """Parse a marshalled TPMT_SIGNATURE."""
    signature = bounded('signature', signature, MAX_SIGNATURE_SIZE)
    unmarshal_whole(TPMT_SIGNATURE, 'signature', signature)
    if len(signature) < _SIGNATURE_HEADER.size:
        raise exception.EvidenceError(
            'signature of scheme NULL carries no signature')
    reader = _Reader(signature)
    scheme, hash_alg = reader.unpack(_SIGNATURE_HEADER)
    if scheme == TPM2_ALG.ECDSA:
        values = (reader.sized(), reader.sized())
    elif scheme in (TPM2_ALG.RSASSA, TPM2_ALG.RSAPSS):
        values = (reader.sized(),)
    else:
        values = ()
    return Signature(scheme, hash_alg, values)


def parse_public(public, name='public key'):
    """Parse a marshalled TPM2B_PUBLIC (an AK, an EK, a certified key)."""
    public = bounded(name, public, MAX_PUBLIC_SIZE)
    parsed = unmarshal_whole(TPM2B_PUBLIC, name, public)
    # libtss2-mu reads the public area whatever the size prefix says:
    # insist on the one canonical encoding.
    if len(public) < 2 or int.from_bytes(public[:2], 'big') != (
            len(public) - 2):
        raise exception.EvidenceError(
            '%s: its size field does not match its length' % name)
    return parsed
