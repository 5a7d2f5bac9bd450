"""Bounded retries of a migration step that could not run.

A step that could not run (a vTPM manager restarting, the verifier or
the message broker unreachable, the verifier's database busy) decided
nothing: trying it again is safe, and usually all it takes. Refusals for
a reason (an untrusted host, a bad signature, a record in another state)
are never retried. The waits are [korora] step_retry_interval, growing
by as much after each retry up to step_retry_max_interval, for at most
step_retries retries.

A plain loop, not oslo.service's RetryDecorator: its looping call logs
every error that ends it with a traceback, which korora-manage would
print on an operator's terminal.
"""

import time

from oslo_log import log as logging

from korora_nova import conf
from korora_nova import exception

CONF = conf.CONF
LOG = logging.getLogger(__name__)

# What a step that could not run raises.
NOT_RUN = (exception.StepNotRun, exception.TPMConnectionError)


def retried(what, attempt):
    """attempt()'s result, trying again while it raises NOT_RUN; the last
    such error once the tries are used up. Other errors pass at once."""
    options = CONF.korora
    tries = options.step_retries + 1
    wait = 0.0
    for attempt_number in range(1, tries + 1):
        try:
            return attempt()
        except NOT_RUN as error:
            if attempt_number == tries:
                LOG.error('Korora: %s could not run after %d tries: %s',
                          what, tries, error)
                raise
            LOG.warning('Korora: %s could not run (try %d of %d): %s',
                        what, attempt_number, tries, error)
        wait = min(wait + options.step_retry_interval,
                   options.step_retry_max_interval)
        time.sleep(wait)
