"""Policy defaults of /migrations."""

from korora_nova.api.policies import base

LIST = 'korora:migrations:list'
SHOW = 'korora:migrations:show'

rules = [
    base.operation(LIST, base.ADMIN_OR_SYSTEM_READER,
                   'List Kororā\'s records of live migrations.', 'GET',
                   '/migrations'),
    base.operation(SHOW, base.ADMIN_OR_SYSTEM_READER,
                   'Show a migration: its timeline, manifest and audit '
                   'entries.', 'GET', '/migrations/{uuid}'),
]


def list_rules():
    return rules
