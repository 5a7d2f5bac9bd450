"""Policy defaults of /hosts."""

from korora_nova.api.policies import base

LIST = 'korora:hosts:list'
SHOW = 'korora:hosts:show'
ENROLL = 'korora:hosts:enroll'
DELETE = 'korora:hosts:delete'
ATTEST = 'korora:hosts:attest'
SET_POLICY = 'korora:hosts:set_policy'
QUOTE = 'korora:hosts:quote'

rules = [
    base.operation(LIST, base.ADMIN_OR_SYSTEM_READER,
                   'List enrolled hosts and their trust.', 'GET', '/hosts'),
    base.operation(SHOW, base.ADMIN_OR_SYSTEM_READER,
                   'Show a host, its current verdict with its reasons and '
                   'age, and its recent verdicts.', 'GET', '/hosts/{host}'),
    base.operation(ENROLL, base.ADMIN,
                   'Enroll a host (its EK certificate checked, its AK bound '
                   'by credential activation).', 'POST', '/hosts'),
    base.operation(DELETE, base.ADMIN, 'Forget an enrolled host.', 'DELETE',
                   '/hosts/{host}'),
    base.operation(ATTEST, base.ADMIN, 'Attest a host now.', 'POST',
                   '/hosts/{host}/attest'),
    base.operation(SET_POLICY, base.ADMIN,
                   'Judge a host by another reference policy.', 'PUT',
                   '/hosts/{host}/policy'),
    base.operation(QUOTE, base.ADMIN,
                   'Quote a host now: the PCR values its TPM signed, '
                   'verified, for a policy the operator signs '
                   '(microversion 1.1).', 'POST', '/hosts/{host}/quote'),
]


def list_rules():
    return rules
