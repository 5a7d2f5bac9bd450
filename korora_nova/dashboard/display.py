"""How the panels show korora-api's values."""

from django.utils.translation import gettext_lazy as _

STATES = {
    'trusted': _('Trusted'),
    'untrusted': _('Untrusted'),
    'stale': _('Stale (no recent verdict)'),
    'unknown': _('Unknown (never attested)'),
}


def age(seconds):
    """An age in seconds as "42 s", "5 min", "3 h" or "2 d"."""
    if seconds is None:
        return '-'
    for unit, size in (('d', 86400), ('h', 3600), ('min', 60)):
        if seconds >= size:
            return '%d %s' % (seconds // size, unit)
    return '%d s' % seconds


def trust_state(host):
    return STATES.get(host['trust']['state'], host['trust']['state'])


def trust_age(host):
    return age(host['trust']['age_seconds'])


def trust_summary(host):
    return host['trust']['summary'] or '-'


def changed(migration):
    return migration['updated_at'] or migration['created_at']


def yes_no(value):
    return _('Yes') if value else _('No')


def policy_choices(policies):
    """(name, name) for a form's select: each policy name once, in the
    API's order, from its list of versions."""
    names = []
    for version in policies:
        if version['name'] not in names:
            names.append(version['name'])
    return [(name, name) for name in names]


def policy_version_id(version):
    """A policy version's id in a table and a URL: NAME:VERSION (a name
    may hold any printable character but ends before the last colon)."""
    return '%s:%d' % (version['name'], version['version'])


def split_policy_version_id(object_id):
    """(name, version) of policy_version_id's text; ValueError if it is
    not one."""
    name, colon, version = object_id.rpartition(':')
    if not (name and colon and version.isdigit()):
        raise ValueError('not NAME:VERSION: %r' % object_id[:64])
    return name, int(version)


def audit_head(head):
    """The head to keep outside the database, as "audit verify --head"
    takes it: SEQ:HASH; '-' for an empty log."""
    if not head:
        return '-'
    return '%d:%s' % (head['seq'], head['entry_hash'])
