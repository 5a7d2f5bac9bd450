"""Step 6 on the compute hosts: what each removes.

Commit (on the source, once the verifier recorded the arrival as
verified): the source's copy of the vTPM state goes, then the source's
counter advances (korora_nova.hooks.protocol.commit), so an old copy
can neither be replayed nor cloned. Rollback: the destination removes
whatever the transfer brought; the instance stays on its source.
"""

from oslo_log import log as logging

from korora_nova import exception

LOG = logging.getLogger(__name__)


def commit(protocol, record, backend):
    """VERIFIED -> COMMITTED, run by the source."""
    backend.remove_instance(record.instance_uuid)
    return protocol.commit(record)


def abort(protocol, record_uuid, reason):
    """Have the verifier move the migration to ABORTED unless it is
    final already; never raises (an abort runs on failure paths)."""
    try:
        return protocol.abort(record_uuid, reason)
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
