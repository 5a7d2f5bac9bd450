"""Bounded retries of a migration step that could not run.

A step that could not run (a vTPM manager restarting, the verifier or
the message broker unreachable, the verifier's database busy) decided
nothing: trying it again is safe, and usually all it takes. Refusals for
a reason (an untrusted host, a bad signature, a record in another state)
are never retried. The retries are oslo.service's RetryDecorator, with
[korora] step_retries, step_retry_interval and step_retry_max_interval.
"""

from oslo_log import log as logging
from oslo_service import loopingcall

from korora_nova import conf
from korora_nova import exception

CONF = conf.CONF
LOG = logging.getLogger(__name__)

# What a step that could not run raises.
NOT_RUN = (exception.StepNotRun, exception.TPMConnectionError)


def retried(what, attempt):
    """attempt()'s result, trying again while it raises NOT_RUN; the last
    such error once the tries are used up."""
    options = CONF.korora
    tries = [0]

    def logged_attempt():
        tries[0] += 1
        try:
            return attempt()
        except NOT_RUN as error:
            if tries[0] <= options.step_retries:
                LOG.warning('Korora: %s could not run (try %d of %d): %s',
                            what, tries[0], options.step_retries + 1, error)
            else:
                LOG.error('Korora: %s could not run after %d tries: %s',
                          what, tries[0], error)
            raise

    decorator = loopingcall.RetryDecorator(
        max_retry_count=options.step_retries,
        inc_sleep_time=options.step_retry_interval,
        max_sleep_time=options.step_retry_max_interval,
        exceptions=NOT_RUN)
    return decorator(logged_attempt)()
