"""The one freshness rule: which hosts may receive a vTPM instance now.

A host passes when its current verdict is trusted and was made within
[korora] trust_ttl seconds. nova-scheduler's TrustedVTPMFilter and
korora-api's instance trust (GET /instances/{uuid}/trust) both judge
the rows of korora_nova.db.api.host_trust_for_scheduling with it, so
they never disagree.
"""

import datetime

# A verdict's summary is cut to this many characters in a short reason.
MAX_REASON = 160


def cutoff(now, trust_ttl):
    """The oldest verdict time that still counts at now."""
    return now - datetime.timedelta(seconds=trust_ttl)


def state(entry, cutoff):
    """What a host's current trust is, in a word: unknown (no verdict),
    stale (older than cutoff), trusted or untrusted.

    entry: host_trust_all()'s value for the host (trusted, summary,
    verified_at), None when it has no verdict.
    """
    if entry is None:
        return 'unknown'
    trusted, _summary, verified_at = entry
    if verified_at < cutoff:
        return 'stale'
    return 'trusted' if trusted else 'untrusted'


def refusal(host, entry, cutoff, trust_ttl):
    """None when host passes; else (its reason in short, in full).

    entry: host_trust_for_scheduling(cutoff)'s value for host, None when
    the host has no verdict.
    """
    if entry is None:
        return ('no verdict: not enrolled?',
                'no verdict (is the host enrolled with korora-verifier?)')
    passes, summary, verified_at = entry
    if passes:
        return None
    if verified_at < cutoff:
        when = verified_at.isoformat(timespec='seconds')
        return ('last verdict %s older than trust_ttl %d s: is '
                'korora-verifier running?' % (when, trust_ttl),
                'last verdict of %s is older than trust_ttl (%d s): is '
                'korora-verifier running?' % (when, trust_ttl))
    return 'untrusted: %s' % _short(summary, host), summary


def _short(summary, host):
    """A verdict's summary without what the line says already, cut."""
    for prefix in ('untrusted: ', '%s: ' % host):
        if summary.startswith(prefix):
            summary = summary[len(prefix):]
    if len(summary) > MAX_REASON:
        summary = summary[:MAX_REASON - 3] + '...'
    return summary
