"""A destination's request for a live migration, signed by its TPM.

Only the destination's vTPM manager can open a migration record: the
verifier certifies a key of the destination for every record, so a
record anyone on the bus could open would let them fill that host's
pool of migration keys. The manager signs this document with its AK (a
quote whose qualifying data is the document's digest under the request
purpose); the verifier checks the signature against the destination's
enrolled AK and the quote's PCRs against its policy, that the request
is fresh, and that its nonce was never used. The record's UUID is
derived from that nonce, so the same request never opens two records.
"""

import dataclasses
import os
import time
import uuid

from oslo_utils import uuidutils

from korora_nova.attestation import purpose
from korora_nova import exception
from korora_nova.migration import signed

VERSION = 1
MAX_DOCUMENT = 16 * 1024
NONCE_SIZE = 32
# Record UUIDs derived from request nonces live in a namespace of their own.
NAMESPACE = uuid.UUID('8d7c1a52-3e4f-4b6a-9c0d-2f1e5a7b9c31')


@dataclasses.dataclass(frozen=True)
class Request:
    instance_uuid: str
    source_host: str
    dest_host: str
    requested_at: int       # the destination's clock, seconds since epoch
    nonce: str              # hex, chosen by the destination's manager

    def document(self):
        return {'version': VERSION,
                'instance_uuid': self.instance_uuid,
                'source_host': self.source_host,
                'dest_host': self.dest_host,
                'requested_at': self.requested_at,
                'nonce': self.nonce}

    def digest(self):
        """The SHA-256 of the canonical document."""
        return signed.digest(self.document())

    def qualifying_data(self):
        """What the destination's TPM signs: the digest under the request
        purpose."""
        return purpose.qualifying_data(purpose.REQUEST, self.digest())

    def migration_uuid(self):
        """The record this request opens: one per nonce."""
        return str(uuid.uuid5(NAMESPACE, self.nonce))


def new(instance_uuid, source_host, dest_host):
    """A request made now with a fresh nonce (for the manager to sign)."""
    return Request(instance_uuid, source_host, dest_host, int(time.time()),
                   os.urandom(NONCE_SIZE).hex())


def signed_text(request, quote):
    return signed.text('request', request.document(), quote)


def load(text):
    """(Request, QuoteEvidence) from signed_text()'s text; bounded,
    strict."""
    document, quote = signed.load(text, 'request', MAX_DOCUMENT,
                                  exception.RequestError, 'migration request')
    version = document.get('version')
    if type(version) is not int or version != VERSION:
        raise exception.RequestError('migration request version %r is not %d'
                                     % (version, VERSION))
    instance_uuid = _text(document, 'instance_uuid', 36)
    if not uuidutils.is_uuid_like(instance_uuid):
        raise exception.RequestError(
            'migration request field instance_uuid is not a '
            'UUID')
    nonce = _text(document, 'nonce', 2 * NONCE_SIZE)
    try:
        if len(bytes.fromhex(nonce)) != NONCE_SIZE:
            raise ValueError()
    except ValueError:
        raise exception.RequestError(
            'migration request nonce is not %d bytes of hex'
            % NONCE_SIZE)
    requested_at = document.get('requested_at')
    if type(requested_at) is not int or not 0 <= requested_at < 2 ** 63:
        raise exception.RequestError('migration request time %r is not a time'
                                     % (requested_at,))
    return Request(instance_uuid, _text(document, 'source_host', 255),
                   _text(document, 'dest_host', 255), requested_at,
                   nonce), quote


def check(request, instance_uuid, source_host, dest_host, lifetime,
          now=None):
    """Raise RequestError unless request asks for exactly this migration,
    made within lifetime seconds of now (either way: clocks differ)."""
    asked = (request.instance_uuid, request.source_host, request.dest_host)
    if asked != (instance_uuid, source_host, dest_host):
        raise exception.RequestError(
            'the signed request is for instance %s from %s to %s, not %s '
            'from %s to %s' % (asked + (instance_uuid, source_host,
                                        dest_host)))
    now = time.time() if now is None else now
    if abs(now - request.requested_at) > lifetime:
        raise exception.RequestError(
            'the signed request of %s was made %d s from now, more than '
            '%d s ([korora] result_lifetime): stale or the clocks differ'
            % (dest_host, now - request.requested_at, lifetime))


def _text(document, name, limit):
    return signed.field(document, name, limit, exception.RequestError,
                        'migration request')
