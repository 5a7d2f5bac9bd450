"""Step 5: verification on arrival, and quarantine when it fails.

Before Nova reports the migration completed, the destination's vTPM
manager measures what arrived and signs it; the verifier checks that
measurement against the source's signed manifest (korora_nova.verifier.
migrations) and answers VERIFIED or QUARANTINED naming the item that
differs. A quarantined instance is paused, gets a fault and a
korora.migration.integrity_failed notification naming the item, and
nothing resumes it automatically.
"""

from nova import exception as nova_exception
from oslo_log import log as logging

from korora_nova import exception
from korora_nova import rpc

LOG = logging.getLogger(__name__)

MANIFEST_ITEM = 'manifest'
# Nothing could be measured at all (no backend for this driver, say).
MEASUREMENT_ITEM = 'measurement'
EVENT_INTEGRITY_FAILED = 'korora.migration.integrity_failed'


class IntegrityCheckFailed(nova_exception.NovaException):
    msg_fmt = ('Korora quarantined the instance on %(host)s: %(reason)s '
               '(migration %(migration)s)')


def quarantine(driver, instance, record, host, failure, protocol=None):
    """Pause the instance, have the verifier record QUARANTINED (through
    protocol, unless it recorded it already), announce it, and return
    IntegrityCheckFailed for the caller to raise (Nova records it as the
    instance's fault). record is None when no migration is known."""
    reason = '%s: %s' % (failure.item, failure.reason)
    migration = record.uuid if record is not None else 'unrecorded'
    source = record.source_host if record is not None else None
    try:
        driver.pause(instance)
    except Exception as error:      # the quarantine goes on regardless
        LOG.error('Korora could not pause instance %s for quarantine: %s',
                  instance.uuid, error)
    if protocol is not None and record is not None:
        try:
            protocol.quarantine(record.uuid, failure.item, failure.reason)
        except exception.KororaError as error:
            LOG.error('Korora: migration %s not recorded as quarantined: '
                      '%s', migration, error)
    LOG.error('Korora quarantined instance %s on %s: %s', instance.uuid,
              host, reason)
    try:
        rpc.get_notifier('korora.%s' % host).error(
            {}, EVENT_INTEGRITY_FAILED,
            {'instance_uuid': instance.uuid, 'migration_uuid': migration,
             'source_host': source, 'dest_host': host,
             'item': failure.item, 'reason': failure.reason})
    except Exception as error:
        LOG.error('Korora: %s notification not sent: %s',
                  EVENT_INTEGRITY_FAILED, error)
    return IntegrityCheckFailed(host=host, reason=reason,
                                migration=migration)
