"""Schemas of /audit."""

from korora_nova.api.schemas import common

VERIFY_QUERY = {
    'type': 'object',
    'properties': {
        # What "korora-manage audit anchor" printed: SEQ:HASH.
        'head': {'type': 'string',
                 'pattern': '^[1-9][0-9]{0,17}:[0-9a-fA-F]{64}$'},
    },
    'additionalProperties': False,
}

ANCHOR = {
    'type': 'object',
    'properties': {'host': common.HOST_NAME},
    'required': ['host'],
    'additionalProperties': False,
}

# From microversion 1.2: the client's nonce, for the verifier's token.
SIGNED_ANCHOR = {
    'type': 'object',
    'properties': {'host': common.HOST_NAME, 'nonce': common.CLIENT_NONCE},
    'required': ['host', 'nonce'],
    'additionalProperties': False,
}

ANCHORS_QUERY = common.page_query(
    marker={'type': 'string', 'pattern': '^[1-9][0-9]{0,17}$'})
