"""Schemas of /hosts."""

from korora_nova.api.schemas import common

LIST_QUERY = common.page_query(marker=common.HOST_NAME)

SHOW_QUERY = {'type': 'object', 'properties': {
    'verdicts': {'type': 'string', 'pattern': '^([0-9]|[1-9][0-9])$'}},
    'additionalProperties': False}

ENROLL = {
    'type': 'object',
    'properties': {
        'host': common.HOST_NAME,
        'policy': {'oneOf': [common.POLICY_NAME, {'type': 'null'}]},
        'trust_on_first_use': {'type': 'boolean'},
    },
    'required': ['host'],
    'additionalProperties': False,
}

# POST /hosts/{host}/quote: no body, or an empty object.
QUOTE = {'type': 'object', 'additionalProperties': False}
# From microversion 1.2: the client's nonce, for the verifier's token.
SIGNED_QUOTE = {
    'type': 'object',
    'properties': {'nonce': common.CLIENT_NONCE},
    'required': ['nonce'],
    'additionalProperties': False,
}

SET_POLICY = {
    'type': 'object',
    'properties': {'policy': common.POLICY_NAME},
    'required': ['policy'],
    'additionalProperties': False,
}
