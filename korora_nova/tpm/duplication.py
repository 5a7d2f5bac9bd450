"""Handing a secret to another TPM: duplication to its certified key.

The sender, in software, wraps a sealed data object for the receiver's
storage key (TPM 2.0 Part 1, "Duplication": an outer wrapper whose seed
only the receiver's private key can recover). The receiver imports it
with TPM2_Import, loads it and unseals it: the secret is in clear only
inside the receiving TPM and the process that asked it.
"""

import dataclasses

from oslo_log import log as logging
from tpm2_pytss import TSS2_Exception
from tpm2_pytss import utils as tss_utils
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.types import TPM2B_DATA
from tpm2_pytss.types import TPM2B_ENCRYPTED_SECRET
from tpm2_pytss.types import TPM2B_PRIVATE
from tpm2_pytss.types import TPM2B_SENSITIVE
from tpm2_pytss.types import TPMT_SYM_DEF_OBJECT

from korora_nova.attestation import evidence
from korora_nova import exception
from korora_nova.tpm import certify
from korora_nova.tpm import connection as tpm_connection

LOG = logging.getLogger(__name__)

MAX_SEALED_SIZE = 128           # TPM2B_SENSITIVE_DATA (MAX_SYM_DATA)
MAX_DUPLICATE_SIZE = 1024       # TPM2B_PRIVATE of a small sealed object
MAX_SEED_SIZE = 512             # TPM2B_ENCRYPTED_SECRET (ECC point, RSA)

# Duplicable (no fixedTPM/fixedParent), unsealed with an empty password.
SEALED_OBJECT_ATTRIBUTES = TPMA_OBJECT.USERWITHAUTH
RECEIVER_KEY_ATTRIBUTES = certify.STORAGE_KEY_ATTRIBUTES


@dataclasses.dataclass(frozen=True)
class Duplicate:
    public: bytes       # marshalled TPM2B_PUBLIC of the sealed object
    duplicate: bytes    # marshalled TPM2B_PRIVATE, wrapped for the receiver
    seed: bytes         # marshalled TPM2B_ENCRYPTED_SECRET


def check_receiver_key(public_bytes, name='the receiving key'):
    """The parsed TPM2B_PUBLIC, if it is a storage key fixed to its TPM.

    Certification proves the key lives in the certifying TPM only if the
    key cannot leave it: fixedTPM and fixedParent must be set.
    """
    public = evidence.parse_public(public_bytes, name)
    attributes = public.publicArea.objectAttributes
    if attributes & RECEIVER_KEY_ATTRIBUTES != RECEIVER_KEY_ATTRIBUTES:
        raise exception.EvidenceError(
            '%s is not a restricted decryption key fixed to its TPM '
            '(attributes 0x%08x)' % (name, int(attributes)))
    if public.publicArea.type != TPM2_ALG.ECC:
        raise exception.EvidenceError('%s is not an ECC key' % name)
    return public


def wrap(receiver_public_bytes, secret):
    """Wrap secret (1 to 128 bytes) for the receiver's storage key."""
    if not isinstance(secret, bytes) or not (
            0 < len(secret) <= MAX_SEALED_SIZE):
        raise exception.TPMError('a duplicated secret is 1 to %d bytes'
                                 % MAX_SEALED_SIZE)
    receiver = check_receiver_key(receiver_public_bytes)
    sensitive, public = TPM2B_SENSITIVE.keyedhash_from_secret(
        secret, objectAttributes=SEALED_OBJECT_ATTRIBUTES)
    try:
        _, duplicate, seed = tss_utils.wrap(receiver.publicArea, public,
                                            sensitive)
    except (ValueError, TypeError) as error:
        # tpm2-pytss refuses a key it cannot encrypt to (a point off its
        # curve, a scheme it does not know).
        raise exception.EvidenceError(
            'the receiving key cannot be used to seal a secret: %s' % error)
    return Duplicate(public.marshal(), duplicate.marshal(), seed.marshal())


def unwrap(connection, receiver_unique, duplicated, loaded=None):
    """Import the duplicate under the certified key and unseal it.

    loaded: the certify.LoadedKey of receiver_unique, if it is still
    loaded (it stays so; the caller releases it): three TPM commands and
    a flush. Without it the key is recreated from receiver_unique (a key
    generation) and flushed again.
    """
    if not isinstance(receiver_unique, bytes) or len(receiver_unique) != (
            certify.UNIQUE_SIZE):
        raise exception.EvidenceError('the receiving key\'s unique is not '
                                      '%d bytes' % certify.UNIQUE_SIZE)
    public = evidence.parse_public(duplicated.public, 'duplicated object')
    if public.publicArea.type != TPM2_ALG.KEYEDHASH:
        raise exception.EvidenceError('the duplicated object is not a '
                                      'sealed data object')
    duplicate = evidence.unmarshal_whole(
        TPM2B_PRIVATE, 'duplicate',
        evidence.bounded('duplicate', duplicated.duplicate,
                         MAX_DUPLICATE_SIZE))
    seed = evidence.unmarshal_whole(
        TPM2B_ENCRYPTED_SECRET, 'encrypted seed',
        evidence.bounded('encrypted seed', duplicated.seed, MAX_SEED_SIZE))
    with connection.esapi() as ectx:
        if loaded is not None and loaded.context is ectx and (
                loaded.unique == receiver_unique):
            try:
                return _open(ectx, loaded.handle, public, duplicate, seed)
            except TSS2_Exception as error:
                # The TPM restarted under the link: the handle is gone,
                # or another key's (whose import then fails its check).
                LOG.info('a kept TPM key did not open the secret (%s); '
                         'making it again', error)
        parent = certify.load_storage_key(ectx, receiver_unique)
        try:
            return _open(ectx, parent, public, duplicate, seed)
        finally:
            tpm_connection.flush(ectx, parent)


def _open(ectx, parent, public, duplicate, seed):
    """Import, load and unseal under parent; the sealed object is
    flushed again at once (the parent is the caller's)."""
    sealed = None
    try:
        private = ectx.import_(
            parent, TPM2B_DATA(), public, duplicate, seed,
            TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL))
        sealed = ectx.load(parent, private, public)
        return bytes(ectx.unseal(sealed))
    finally:
        if sealed is not None:
            tpm_connection.flush(ectx, sealed)
