"""korora-api's refusals as Horizon messages: one line, never a
traceback."""

from horizon import messages

from korora_nova import exception


def report(request, what, call, *args, **kwargs):
    """call(*args, **kwargs); on korora-api's refusal, or an answer the
    client does not believe (not signed by a pinned verifier key), an
    error message "WHAT failed: REASON" and None."""
    try:
        return call(*args, **kwargs)
    except exception.KororaError as error:
        messages.error(request, '%s failed: %s' % (what, error))
        return None
