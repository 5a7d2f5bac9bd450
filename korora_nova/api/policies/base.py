"""The secure RBAC personas the defaults are built from.

Writes are for admins. Reads are for admins and system readers (a
reader with a system-scoped token): hosts, their TPMs and the
migrations between them are the cloud's infrastructure, which Nova too
shows only to admins, and korora knows no project of an instance, so a
project reader has nothing of its own to read here.
"""

from oslo_policy import policy

ADMIN = 'rule:korora:admin'
ADMIN_OR_SYSTEM_READER = 'rule:korora:admin_or_system_reader'
SCOPES = ['project', 'system']

rules = [
    policy.RuleDefault(
        'korora:admin', 'role:admin',
        description='An admin (of any scope): the writes.',
        scope_types=SCOPES),
    policy.RuleDefault(
        'korora:system_reader', 'role:reader and system_scope:all',
        description='A reader with a system-scoped token.',
        scope_types=['system']),
    policy.RuleDefault(
        'korora:admin_or_system_reader',
        'rule:korora:admin or rule:korora:system_reader',
        description='The reads.',
        scope_types=SCOPES),
]


def operation(name, check_str, description, method, path):
    return policy.DocumentedRuleDefault(
        name=name, check_str=check_str, description=description,
        operations=[{'method': method, 'path': path}], scope_types=SCOPES)


def list_rules():
    return rules
