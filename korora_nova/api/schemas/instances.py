"""Schemas of /instances."""

from korora_nova.api.schemas import common

TRUST_QUERY = common.page_query(marker=common.HOST_NAME)
