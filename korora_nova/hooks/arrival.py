"""Step 5: verification on arrival; quarantine when it finds a change,
a hold when it cannot run.

Before Nova reports the migration completed, the destination's vTPM
manager measures what arrived and signs it; the verifier checks that
measurement against the source's signed manifest (korora_nova.verifier.
migrations) and answers VERIFIED or QUARANTINED naming the item that
differs. A quarantined instance is paused, gets a fault and a
korora.migration.integrity_failed notification naming the item, and
nothing resumes it automatically.

A check that could not be made (no manifest yet, a service down) is no
evidence: the instance is held, paused, with a fault and a
korora.migration.held notification, and the record stays in flight for
recovery (korora_nova.hooks.recovery) to prove and resume it.
"""

from nova import exception as nova_exception
from oslo_log import log as logging

from korora_nova import rpc

LOG = logging.getLogger(__name__)

MANIFEST_ITEM = 'manifest'
EVENT_INTEGRITY_FAILED = 'korora.migration.integrity_failed'
EVENT_HELD = 'korora.migration.held'


class IntegrityCheckFailed(nova_exception.NovaException):
    msg_fmt = ('Korora quarantined the instance on %(host)s: %(reason)s '
               '(migration %(migration)s)')


class InstanceHeld(nova_exception.NovaException):
    msg_fmt = ('Korora holds the instance paused on %(host)s until its '
               'migration is proven: %(reason)s (migration %(migration)s)')


def _pause(driver, instance, why):
    try:
        driver.pause(instance)
    except Exception as error:      # it goes on regardless
        LOG.error('Korora could not pause instance %s (%s): %s',
                  instance.uuid, why, error)


def _notify(host, priority, event, payload):
    try:
        getattr(rpc.get_notifier('korora.%s' % host), priority)(
            {}, event, payload)
    except Exception as error:
        LOG.error('Korora: %s notification not sent: %s', event, error)


def hold(driver, instance, record, host, reason):
    """Pause the instance, announce the hold, and return InstanceHeld
    for the caller to raise (Nova records it as the instance's fault);
    the record stays as it is. record is None when it cannot be read."""
    migration = record.uuid if record is not None else 'unknown'
    _pause(driver, instance, 'hold')
    LOG.warning('Korora holds instance %s paused on %s until migration %s '
                'is proven (recovery retries): %s', instance.uuid, host,
                migration, reason)
    _notify(host, 'warn', EVENT_HELD,
            {'instance_uuid': instance.uuid, 'migration_uuid': migration,
             'source_host': record.source_host if record else None,
             'dest_host': host, 'reason': str(reason)})
    return InstanceHeld(host=host, reason=reason, migration=migration)


def quarantine(driver, instance, record, host, failure):
    """Pause the instance, announce the quarantine the verifier recorded,
    and return IntegrityCheckFailed for the caller to raise (Nova
    records it as the instance's fault). record is None when no
    migration is known."""
    reason = '%s: %s' % (failure.item, failure.reason)
    migration = record.uuid if record is not None else 'unrecorded'
    source = record.source_host if record is not None else None
    _pause(driver, instance, 'quarantine')
    LOG.error('Korora quarantined instance %s on %s: %s', instance.uuid,
              host, reason)
    _notify(host, 'error', EVENT_INTEGRITY_FAILED,
            {'instance_uuid': instance.uuid, 'migration_uuid': migration,
             'source_host': source, 'dest_host': host,
             'item': failure.item, 'reason': failure.reason})
    return IntegrityCheckFailed(host=host, reason=reason,
                                migration=migration)
