"""Schemas of /migrations."""

from korora_nova.api.schemas import common
from korora_nova.migration import states

LIST_QUERY = common.page_query(
    marker=common.UUID,
    instance_uuid=common.UUID,
    host=common.HOST_NAME,
    state={'type': 'string', 'enum': sorted(states.ALL)},
    changed_since=common.TIME,
    changed_before=common.TIME)
