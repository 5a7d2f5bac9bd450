"""Step 6: commit, or roll back.

Commit (on the source, once the destination verified the arrival): the
source's copy of the vTPM state goes and the source's counter advances,
so an old copy can neither be replayed nor cloned. Abort (any failure
before that): the instance stays on its source with its vTPM intact and
whatever the destination received is removed.
"""

from oslo_log import log as logging

from korora_nova import exception
from korora_nova.migration import records
from korora_nova.migration import states

LOG = logging.getLogger(__name__)


def commit(record, host, backend, manager_api):
    """VERIFIED -> COMMITTED, run by the source."""
    backend.remove_instance(record.instance_uuid)
    counter = manager_api.advance_counter(host)
    return records.transition(record.uuid, host, states.COMMITTED,
                              details={'counter': counter},
                              expected=states.VERIFIED)


def abort(record_uuid, host, reason):
    """Move the migration to ABORTED unless it is final already."""
    try:
        return records.transition(record_uuid, host, states.ABORTED,
                                  reason=reason)
    except states.IllegalTransition as error:
        LOG.info('Korora: migration %s not aborted: %s', record_uuid, error)
    except exception.KororaError as error:
        LOG.error('Korora: migration %s could not be recorded as aborted: '
                  '%s', record_uuid, error)
    return None


def remove_arrived_copy(backend, record, host):
    """On the destination: remove what the transfer brought (rollback)."""
    if record.dest_host != host:
        return
    try:
        backend.remove_instance(record.instance_uuid)
    except exception.KororaError as error:
        LOG.error('Korora: the copy of instance %s on %s was not removed: '
                  '%s', record.instance_uuid, host, error)
