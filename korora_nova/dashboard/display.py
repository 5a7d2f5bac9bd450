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
