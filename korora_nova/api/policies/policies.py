"""Policy defaults of /policies (reference policies)."""

from korora_nova.api.policies import base

LIST = 'korora:policies:list'
SHOW = 'korora:policies:show'
IMPORT = 'korora:policies:import'
ACTIVATE = 'korora:policies:activate'
DEACTIVATE = 'korora:policies:deactivate'

VERSION = '/policies/{name}/versions/{version}'
rules = [
    base.operation(LIST, base.ADMIN_OR_SYSTEM_READER,
                   'List reference policy versions.', 'GET', '/policies'),
    base.operation(SHOW, base.ADMIN_OR_SYSTEM_READER,
                   'Show a policy version, its document and whether a '
                   'trusted operator key signed it.', 'GET', VERSION),
    base.operation(IMPORT, base.ADMIN,
                   'Import a policy version an operator signed.', 'POST',
                   '/policies'),
    base.operation(ACTIVATE, base.ADMIN,
                   'Accept hosts that match this version.', 'POST',
                   VERSION + '/activate'),
    base.operation(DEACTIVATE, base.ADMIN,
                   'Stop accepting hosts that match only this version.',
                   'POST', VERSION + '/deactivate'),
]


def list_rules():
    return rules
