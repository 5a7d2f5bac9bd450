"""Policy defaults of /audit."""

from korora_nova.api.policies import base

VERIFY = 'korora:audit:verify'
HEAD = 'korora:audit:head'
ANCHORS = 'korora:audit:anchors'

rules = [
    base.operation(VERIFY, base.ADMIN_OR_SYSTEM_READER,
                   'Verify the audit log\'s hash chain, its TPM anchors '
                   'and the rows that decide trust.', 'GET',
                   '/audit/verify'),
    base.operation(HEAD, base.ADMIN_OR_SYSTEM_READER,
                   'Show the audit log\'s newest entry.', 'GET',
                   '/audit/head'),
    base.operation(ANCHORS, base.ADMIN_OR_SYSTEM_READER,
                   'List the audit log\'s TPM anchors.', 'GET',
                   '/audit/anchors'),
]


def list_rules():
    return rules
