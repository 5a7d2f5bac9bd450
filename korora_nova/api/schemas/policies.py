"""Schemas of /policies."""

from korora_nova.api.schemas import common

LIST_QUERY = common.page_query(
    marker={'type': 'string', 'pattern': r'^.{1,255}:[1-9][0-9]{0,9}$'},
    name=common.POLICY_NAME)

IMPORT = {
    'type': 'object',
    'properties': {
        # The policy file's JSON ({"name", "version", "pcrs"}), checked
        # in full by attestation.policy.
        'policy': {'type': 'object',
                   'required': ['name', 'version', 'pcrs']},
        # The operator's compact JWS over the policy's canonical JSON.
        'signature': {'type': 'string', 'minLength': 1,
                      'maxLength': 2 * 1024 * 1024},
        'active': {'type': 'boolean'},
    },
    'required': ['policy', 'signature'],
    'additionalProperties': False,
}
