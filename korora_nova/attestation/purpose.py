"""What a TPM signature is for: one label per purpose.

Every value a korora TPM signs as qualifying data (a quote's extraData,
TPM2_Certify's qualifyingData) is ``SHA-256(label || 0x00 || payload)``
with the label of its purpose. A signature made for one purpose then
never verifies as one made for another: a quote over a verifier's
attestation nonce is not a manifest signature, a key certification is
not an audit anchor, whatever bytes the caller chose.

The vTPM manager builds the qualifying data itself from the label of
the call it serves; no caller hands it a value to sign as is.
"""

import hashlib

ATTEST = b'korora attest v1'        # a verifier's attestation challenge
MANIFEST = b'korora manifest v1'    # the source's integrity manifest
ARRIVAL = b'korora arrival v1'      # the destination's arrival measurement
CERTIFY = b'korora certify v1'      # a per-migration key's certification
ANCHOR = b'korora anchor v1'        # an audit-log head anchored in a TPM
REQUEST = b'korora request v1'      # a destination's migration request

ALL = (ATTEST, MANIFEST, ARRIVAL, CERTIFY, ANCHOR, REQUEST)

# Qualifying data is a SHA-256 digest, whatever the payload's size.
SIZE = hashlib.sha256().digest_size


def qualifying_data(label, payload):
    """The bytes the TPM signs for payload under label."""
    if label not in ALL:
        raise ValueError('unknown signature purpose %r' % (label,))
    if not isinstance(payload, bytes):
        raise TypeError('the payload of a TPM signature is bytes')
    return hashlib.sha256(label + b'\x00' + payload).digest()


def name(label):
    """The purpose's short name ('attest', 'manifest', ...) for messages.
    """
    return label.decode('ascii').split()[1]
