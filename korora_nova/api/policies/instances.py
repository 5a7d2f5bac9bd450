"""Policy defaults of /instances."""

from korora_nova.api.policies import base

TRUST = 'korora:instances:trust'

rules = [
    base.operation(TRUST, base.ADMIN_OR_SYSTEM_READER,
                   'List the hosts an instance may live-migrate to now, '
                   'each refused one with its reason.', 'GET',
                   '/instances/{uuid}/trust'),
]


def list_rules():
    return rules
