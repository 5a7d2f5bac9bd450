"""Admin requests: korora-api's signed orders to the verifier.

Anyone on the message bus can call the verifier, so the verifier must
not carry out an operator's write (enroll a host, set its policy, import
a policy version...) because a call asked for it. korora-api signs each
write it sends: a short-lived ES256 JWS (the machinery of
attestation.results, token kind ``admin-request``, issuer korora-api,
audience korora-verifier) that names the operation, binds the SHA-256
of its exact arguments, carries a unique id (jti) and says which
Keystone user and project asked. The verifier checks it against
[korora] api_public_keys and refuses anything else; it remembers each
jti until the token expires (in its database, so that no worker takes a
token twice).
"""

import hashlib

from korora_nova.attestation.canonical import canonical
from korora_nova.attestation import es256_keys
from korora_nova.attestation import results
from korora_nova import exception

KIND = results.ADMIN_REQUEST
ISSUER = 'korora-api'
AUDIENCE = 'korora-verifier'
OPERATION = 'korora.operation'
ARGUMENTS = 'korora.arguments-sha256'
REQUESTER = 'korora.requester'
# What a requester claim may hold (from the Keystone context), each a
# string of at most MAX_FIELD characters.
REQUESTER_FIELDS = ('user_id', 'project_id', 'system_scope', 'request_id')
MAX_FIELD = 255


def arguments_digest(operation, arguments):
    """The hex SHA-256 of the operation and its arguments' canonical
    JSON: what the signature binds."""
    text = canonical({'operation': operation, 'arguments': arguments})
    return hashlib.sha256(text.encode('ascii')).hexdigest()


def load_signing_key(path):
    """korora-api's key ([korora_api] signing_key)."""
    return results.SigningKey.load(path, ISSUER, 'korora-api signing key')


def sign(signing_key, operation, arguments, requester, lifetime):
    """The token ordering operation(arguments) for requester (a dict of
    REQUESTER_FIELDS), valid lifetime seconds."""
    return signing_key.sign(KIND, operation, lifetime, {
        'aud': AUDIENCE, OPERATION: operation,
        ARGUMENTS: arguments_digest(operation, arguments),
        REQUESTER: _requester(requester)})


def _requester(requester):
    return {name: str(requester[name])[:MAX_FIELD]
            for name in REQUESTER_FIELDS if requester.get(name) is not None}


class Checker:
    """The verifier's check of an admin request against the keys of
    [korora] api_public_keys."""

    def __init__(self, public_keys):
        self._keys = results.TrustedKeys(
            public_keys, issuer=ISSUER, audience=AUDIENCE,
            what='the admin request', option='[korora] api_public_keys')

    @classmethod
    def load(cls, paths):
        """None when paths is empty: then no admin request is obeyed."""
        if not paths:
            return None
        return cls([es256_keys.load_public_key(path, 'korora-api public key')
                    for path in paths])

    def check(self, token, operation, arguments):
        """The token's claims if korora-api signed it for exactly
        operation(arguments) and it has not expired; NotAuthorized with
        the reason otherwise. The caller refuses a jti seen before."""
        try:
            claims = self._keys.verify(token, KIND)
        except exception.SignedResultError as error:
            raise exception.NotAuthorized(reason=str(error))
        if claims.get(OPERATION) != operation or claims.get(
                'sub') != operation:
            raise exception.NotAuthorized(
                reason='the admin request was signed for %s, not %s'
                % (str(claims.get(OPERATION))[:64], operation))
        if claims.get(ARGUMENTS) != arguments_digest(operation, arguments):
            raise exception.NotAuthorized(
                reason='the arguments of %s are not the ones korora-api '
                'signed (altered on the way)' % operation)
        jti = claims.get('jti')
        if not isinstance(jti, str) or not 0 < len(jti) <= 64:
            raise exception.NotAuthorized(
                reason='the admin request carries no id (jti)')
        if not isinstance(claims.get(REQUESTER), dict):
            raise exception.NotAuthorized(
                reason='the admin request names no requester')
        claims[REQUESTER] = _requester(claims[REQUESTER])
        return claims
