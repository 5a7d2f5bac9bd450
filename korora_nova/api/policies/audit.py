"""Policy defaults of /audit."""

from korora_nova.api.policies import base

VERIFY = 'korora:audit:verify'
HEAD = 'korora:audit:head'
ANCHORS = 'korora:audit:anchors'
ANCHOR = 'korora:audit:anchor'

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
    base.operation(ANCHOR, base.ADMIN,
                   'Anchor the audit log\'s head with an enrolled host\'s '
                   'TPM (microversion 1.1).', 'POST', '/audit/anchors'),
]


def list_rules():
    return rules
