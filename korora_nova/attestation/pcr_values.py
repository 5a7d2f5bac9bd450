"""PCR selections and values: parsing, bounds, and the quoted digest.

PCR values are kept as ``{bank: {index: digest}}``, for example
``{'sha256': {0: b'...', 10: b'...'}}``. A quote covers them in selection
order: banks in the order of the TPML_PCR_SELECTION, indices ascending.
"""

import hashlib
import struct

from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPML_PCR_SELECTION
from tpm2_pytss.utils import unmarshal_tools_pcr_values

from korora_nova import exception

BANKS = {
    TPM2_ALG.SHA1: 'sha1',
    TPM2_ALG.SHA256: 'sha256',
    TPM2_ALG.SHA384: 'sha384',
    TPM2_ALG.SHA512: 'sha512',
}
BANK_IDS = {name: alg for alg, name in BANKS.items()}
DIGEST_SIZES = {'sha1': 20, 'sha256': 32, 'sha384': 48, 'sha512': 64}

MAX_PCR_INDEX = 23          # PC Client TPMs have 24 PCRs per bank
MAX_SELECT_BYTES = 4        # TPMS_PCR_SELECTION.pcrSelect in libtss2
MAX_BANKS = 16              # TPML_PCR_SELECTION.pcrSelections in libtss2
MAX_DIGESTS_PER_LIST = 8    # TPML_DIGEST.digests in libtss2
MAX_DIGEST_SIZE = 64        # TPM2B_DIGEST.buffer in libtss2


def pcr_index(text):
    """A PCR index written as plain decimal digits ("7", "23"), or None.

    Stricter than int(): " 7", "+7", "1_0" and "07" are not indices, so
    two spellings can never name the same PCR.
    """
    if not isinstance(text, str) or not text.isdigit() or not text.isascii():
        return None
    if len(text) > 2 or (len(text) > 1 and text[0] == '0'):
        return None
    number = int(text)
    return number if number <= MAX_PCR_INDEX else None


def bank_name(alg):
    try:
        return BANKS[alg]
    except KeyError:
        raise exception.EvidenceError(
            'unknown PCR bank algorithm 0x%04x' % int(alg))


def parse_selection(entries):
    """Parse tpm2-tools style entries ("sha256:0,1,7") into a selection.

    Returns an ordered list of (bank, index) pairs.
    """
    if isinstance(entries, str):
        entries = entries.split('+')
    pairs = []
    for entry in entries:
        if not isinstance(entry, str):
            raise exception.ConfigurationError(
                'PCR selection %r: expected text like "sha256:0,1,7"'
                % (entry,))
        bank, _, indices = entry.strip().partition(':')
        bank = bank.strip().lower()
        if bank not in DIGEST_SIZES or not indices:
            raise exception.ConfigurationError(
                'PCR selection %r: expected BANK:INDEX,... with BANK one of '
                '%s' % (entry, ', '.join(sorted(DIGEST_SIZES))))
        try:
            numbers = sorted({int(i) for i in indices.split(',')})
        except ValueError:
            raise exception.ConfigurationError(
                'PCR selection %r: indices must be numbers' % entry)
        if numbers[0] < 0 or numbers[-1] > MAX_PCR_INDEX:
            raise exception.ConfigurationError(
                'PCR selection %r: indices go from 0 to %d'
                % (entry, MAX_PCR_INDEX))
        pairs.extend((bank, i) for i in numbers)
    return pairs


def to_tpml(selection):
    """An ordered (bank, index) list as a TPML_PCR_SELECTION."""
    text = '+'.join(
        '%s:%s' % (bank, ','.join(str(i) for b, i in selection if b == bank))
        for bank in _banks_in_order(selection))
    return TPML_PCR_SELECTION.parse(text)


def _banks_in_order(selection):
    seen = []
    for bank, _ in selection:
        if bank not in seen:
            seen.append(bank)
    return seen


def quoted_digest(selection, values, hash_name):
    """The digest a quote signs over the selected PCR values."""
    digest = hashlib.new(hash_name)
    for bank, index in selection:
        digest.update(values[bank][index])
    return digest.digest()


def from_back_to_back(data, selection):
    """Values written back to back in selection order (tpm2_pcrread -o)."""
    expected = sum(DIGEST_SIZES[bank] for bank, _ in selection)
    if len(data) != expected:
        raise exception.EvidenceError(
            'PCR values file is %d bytes; the quote\'s selection of %d PCRs '
            'needs exactly %d' % (len(data), len(selection), expected))
    _, digests = unmarshal_tools_pcr_values(data, to_tpml(selection))
    values = {}
    for (bank, index), digest in zip(selection, digests):
        values.setdefault(bank, {})[index] = bytes(digest)
    return values


# tpm2-tools' "serialized" PCR file (tpm2_quote -o): the C structures as
# they lie in memory on a little-endian host. TPML_PCR_SELECTION: uint32
# count, 16 x {uint16 hash, uint8 sizeofSelect, uint8 pcrSelect[4]} padded
# to 8 bytes; then uint32 n; then n x TPML_DIGEST: uint32 count and
# 8 x {uint16 size, uint8 buffer[64]}.
_SELECTION_ENTRY = struct.Struct('<HB4sx')
_SELECTION_SIZE = 4 + MAX_BANKS * _SELECTION_ENTRY.size
_DIGEST_ENTRY = struct.Struct('<H64s')
_DIGEST_LIST_SIZE = 4 + MAX_DIGESTS_PER_LIST * _DIGEST_ENTRY.size
MAX_TOOLS_PCR_FILE = _SELECTION_SIZE + 4 + 64 * _DIGEST_LIST_SIZE


def from_tools_serialized(data):
    """Parse tpm2_quote's -o file; returns (selection, values)."""
    if len(data) < _SELECTION_SIZE + 4 or len(data) > MAX_TOOLS_PCR_FILE:
        raise exception.EvidenceError(
            'PCR file is %d bytes: not a tpm2-tools serialized PCR file'
            % len(data))
    (bank_count,) = struct.unpack_from('<I', data, 0)
    if bank_count > MAX_BANKS:
        raise exception.EvidenceError(
            'PCR file lists %d banks; at most %d' % (bank_count, MAX_BANKS))
    selection = []
    for n in range(bank_count):
        alg, size, mask = _SELECTION_ENTRY.unpack_from(
            data, 4 + n * _SELECTION_ENTRY.size)
        if size > MAX_SELECT_BYTES:
            raise exception.EvidenceError(
                'PCR file: bank selection of %d bytes' % size)
        bank = bank_name(alg)
        bits = int.from_bytes(mask[:size], 'little')
        selection.extend((bank, i) for i in range(size * 8) if bits >> i & 1)
    (list_count,) = struct.unpack_from('<I', data, _SELECTION_SIZE)
    if len(data) != _SELECTION_SIZE + 4 + list_count * _DIGEST_LIST_SIZE:
        raise exception.EvidenceError(
            'PCR file is %d bytes but says it holds %d digest lists'
            % (len(data), list_count))
    digests = []
    for n in range(list_count):
        start = _SELECTION_SIZE + 4 + n * _DIGEST_LIST_SIZE
        (count,) = struct.unpack_from('<I', data, start)
        if count > MAX_DIGESTS_PER_LIST:
            raise exception.EvidenceError(
                'PCR file: a digest list of %d entries' % count)
        for k in range(count):
            size, buffer = _DIGEST_ENTRY.unpack_from(
                data, start + 4 + k * _DIGEST_ENTRY.size)
            if size > MAX_DIGEST_SIZE:
                raise exception.EvidenceError(
                    'PCR file: a digest of %d bytes' % size)
            digests.append(buffer[:size])
    if len(digests) != len(selection):
        raise exception.EvidenceError(
            'PCR file selects %d PCRs but holds %d values'
            % (len(selection), len(digests)))
    values = {}
    for (bank, index), digest in zip(selection, digests):
        if len(digest) != DIGEST_SIZES[bank]:
            raise exception.EvidenceError(
                'PCR file: PCR %s:%d is %d bytes long, not %d'
                % (bank, index, len(digest), DIGEST_SIZES[bank]))
        values.setdefault(bank, {})[index] = digest
    return selection, values


def to_json(values):
    """PCR values as JSON-friendly {bank: {"index": hex}}."""
    return {bank: {str(i): v.hex() for i, v in sorted(pcrs.items())}
            for bank, pcrs in values.items()}


def from_json(document):
    """Inverse of to_json, bounded: {bank: {"index": hex}}."""
    if not isinstance(document, dict) or len(document) > MAX_BANKS:
        raise exception.EvidenceError('PCR values are malformed')
    values = {}
    for bank, pcrs in document.items():
        size = DIGEST_SIZES.get(bank)
        if size is None or not isinstance(pcrs, dict) or (
                len(pcrs) > MAX_PCR_INDEX + 1):
            raise exception.EvidenceError(
                'PCR values: unknown bank %r or too many PCRs' % (bank,))
        for index, digest in pcrs.items():
            number = pcr_index(index)
            try:
                value = bytes.fromhex(digest)
            except (TypeError, ValueError):
                value = b''
            if number is None or len(value) != size:
                raise exception.EvidenceError(
                    'PCR values: %s:%s must be a PCR index (0-%d) with a '
                    '%d-byte hex digest' % (bank, index, MAX_PCR_INDEX, size))
            values.setdefault(bank, {})[number] = value
    return values
