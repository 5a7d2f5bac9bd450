"""Steps 2 and 3: the destination's certified key and the sealed vTPM
secret.

Nova's libvirt driver puts the vTPM secret into migrate_data
(``vtpm_secret_value``), which crosses the message bus several times.
With Kororā the field carries only an envelope: the secret encrypted
(AES-256-GCM) under a fresh data key, and the data key duplicated to a
key the attested destination's TPM created for this migration and
certified with its AK (the verifier checked the certification). Only
that TPM can import it; the destination's vTPM manager hands the data
key to nova-compute over the host's own root-only socket, so nothing on
the bus opens the envelope.
"""

import base64
import binascii
import hashlib
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from korora_nova import exception
from korora_nova.attestation import canonical
from korora_nova import rpc
from korora_nova.tpm import duplication

PREFIX = 'korora-sealed-v1:'
MAX_ENVELOPE = 8 * 1024
MAX_SECRET = 1024
NONCE_SIZE = 32
DATA_KEY_SIZE = 32
_GCM_NONCE = 12


def binding(record):
    """What a sealed secret is for: this migration, nothing else (the
    SHA-256 of its description, a fixed size whatever the host names)."""
    return hashlib.sha256(canonical.canonical({
        'purpose': 'korora vTPM secret hand-over',
        'migration_uuid': record.uuid,
        'instance_uuid': record.instance_uuid,
        'source_host': record.source_host,
        'dest_host': record.dest_host}).encode('ascii')).digest()


def seal_secret(key, secret, bound_to):
    """The envelope (a str for vtpm_secret_value) holding secret."""
    plaintext = secret.encode('utf-8')
    if not 0 < len(plaintext) <= MAX_SECRET:
        raise exception.HandoverError(
            'a vTPM secret is 1 to %d bytes' % MAX_SECRET)
    data_key = AESGCM.generate_key(bit_length=8 * DATA_KEY_SIZE)
    nonce = os.urandom(_GCM_NONCE)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, bound_to)
    duplicated = duplication.wrap(key.public, data_key)
    fields = {'unique': key.unique, 'public': duplicated.public,
              'duplicate': duplicated.duplicate, 'seed': duplicated.seed,
              'nonce': nonce, 'ciphertext': ciphertext}
    document = json.dumps({name: base64.b64encode(value).decode('ascii')
                           for name, value in fields.items()},
                          sort_keys=True)
    return PREFIX + base64.urlsafe_b64encode(
        document.encode('ascii')).decode('ascii')


def is_sealed(value):
    return isinstance(value, str) and value.startswith(PREFIX)


def duplicate_fields(fields):
    """What the destination's vTPM manager needs to import the data key
    (base64 text, for its local socket)."""
    return {name: rpc.encode(fields[name])
            for name in ('unique', 'public', 'duplicate', 'seed')}


def open_with(data_key, fields, bound_to):
    """The secret of a parsed envelope, with its imported data key."""
    if not isinstance(data_key, bytes) or len(data_key) != DATA_KEY_SIZE:
        raise exception.HandoverError('the unsealed data key has a wrong size')
    try:
        plaintext = AESGCM(data_key).decrypt(fields['nonce'],
                                             fields['ciphertext'], bound_to)
    except InvalidTag:
        raise exception.HandoverError(
            'the sealed vTPM secret was changed or is not '
            'for this migration')
    try:
        return plaintext.decode('utf-8')
    except UnicodeDecodeError:
        raise exception.HandoverError('the sealed vTPM secret is not text')


def parse(envelope):
    """The fields of an envelope; bounded, strict."""
    if not is_sealed(envelope):
        raise exception.HandoverError(
            'the vTPM secret is not sealed by Korora')
    if len(envelope) > MAX_ENVELOPE:
        raise exception.HandoverError(
            'the sealed vTPM secret is larger than %d bytes'
            % MAX_ENVELOPE)
    try:
        document = json.loads(base64.urlsafe_b64decode(
            envelope[len(PREFIX):].encode('ascii')))
        fields = {name: base64.b64decode(document[name], validate=True)
                  for name in ('unique', 'public', 'duplicate', 'seed',
                               'nonce', 'ciphertext')}
    except (ValueError, KeyError, TypeError, RecursionError,
            binascii.Error) as error:
        raise exception.HandoverError('the sealed vTPM secret is malformed: %s'
                                      % error)
    if len(fields['nonce']) != _GCM_NONCE or not fields['unique']:
        raise exception.HandoverError('the sealed vTPM secret is malformed')
    return fields
