"""Access to a TPM 2.0 through tpm2-pytss: the host side of attestation.

Nothing in this package judges evidence; that is korora_nova.attestation,
which needs no TPM.
"""

import os

# libtss2-esys logs every TPM error code to stderr, including the expected
# "NV index not defined" of probing for EK certificates. Operators who want
# those logs set TSS2_LOG themselves; it must be set before the library
# loads.
os.environ.setdefault('TSS2_LOG', 'all+none')
