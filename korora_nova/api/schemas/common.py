"""Pieces the resources' schemas share."""

# Host names as the verifier stores them (verifier.enrollment).
HOST_NAME = {'type': 'string', 'minLength': 1, 'maxLength': 255,
             'pattern': r'^\S(.*\S)?$'}
# A client's nonce for a signed read: 16 to 64 bytes in base64url.
CLIENT_NONCE = {'type': 'string', 'pattern': '^[A-Za-z0-9_-]{22,86}$'}
POLICY_NAME = {'type': 'string', 'minLength': 1, 'maxLength': 255}
UUID = {'type': 'string', 'format': 'uuid',
        'pattern': '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                   '[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'}
# Query string values are strings.
LIMIT = {'type': 'string', 'pattern': '^[1-9][0-9]{0,8}$'}
TIME = {'type': 'string', 'format': 'date-time',
        'pattern': r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?'
                   r'(Z|[+-]\d\d:\d\d)$'}


def page_query(**parameters):
    """A list's query string: limit, marker and parameters."""
    properties = {'limit': LIMIT}
    properties.update(parameters)
    return {'type': 'object', 'properties': properties,
            'additionalProperties': False}
