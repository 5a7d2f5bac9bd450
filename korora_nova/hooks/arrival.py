"""Step 5: verification on arrival, and quarantine when it fails.

Before Nova reports the migration completed, the destination checks the
source's manifest (signed by the source's attested AK, bound to this
migration, its counter never seen before) and measures the same items
itself. Any difference, or any doubt about the manifest, quarantines the
instance: paused, a fault and a korora.migration.integrity_failed
notification naming the item, and nothing resumes it automatically.
"""

from nova import exception as nova_exception
from oslo_log import log as logging

from korora_nova.db import api as db
from korora_nova import exception
from korora_nova.hooks import manifest as manifest_module
from korora_nova.hypervisors import base
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova import rpc

LOG = logging.getLogger(__name__)

MANIFEST_ITEM = 'manifest'
# Nothing could be measured at all (no backend for this driver, say).
MEASUREMENT_ITEM = 'measurement'
EVENT_INTEGRITY_FAILED = 'korora.migration.integrity_failed'


class IntegrityCheckFailed(nova_exception.NovaException):
    msg_fmt = ('Korora quarantined the instance on %(host)s: %(reason)s '
               '(migration %(migration)s)')


class IntegrityFailure(exception.KororaError):
    """What differed (item) and why, before the quarantine."""

    def __init__(self, item, reason):
        super().__init__(reason)
        self.item = item
        self.reason = reason


def check_manifest(record):
    """The source's manifest, if it is genuine and for this migration."""
    try:
        manifest, quote = manifest_module.load(record.manifest)
        source_nonce, dest_nonce = manifest_module.protocol_nonces(
            record.uuid)
        expected = (record.uuid, record.instance_uuid, record.source_host,
                    record.dest_host, source_nonce, dest_nonce,
                    record.source_counter)
        found = (manifest.migration_uuid, manifest.instance_uuid,
                 manifest.source_host, manifest.dest_host,
                 manifest.source_nonce, manifest.dest_nonce,
                 manifest.counter)
        if found != expected:
            raise manifest_module.ManifestError(
                'the integrity manifest is not bound to this migration')
        highest = records.highest_committed_counter(record.source_host,
                                                    record.instance_uuid)
        if highest is not None and manifest.counter <= highest:
            raise manifest_module.ManifestError(
                'the integrity manifest is bound to counter value %d of %s, '
                'which a committed migration of this instance used already '
                '(replay)' % (manifest.counter, record.source_host))
        source = db.host_get(record.source_host)
        manifest_module.check_signature(manifest, quote, source.ak_public)
    except (manifest_module.ManifestError, exception.HostNotFound) as error:
        raise IntegrityFailure(MANIFEST_ITEM, str(error))
    return manifest


def verify(record, backend, vtpm_secret=None):
    """Compare what arrived with the source's manifest.

    Returns the manifest; raises IntegrityFailure naming the first item
    that differs (or 'manifest').
    """
    manifest = check_manifest(record)
    disks = [name[len(base.DISK_PREFIX):] for name in manifest.items
             if name.startswith(base.DISK_PREFIX)]
    try:
        arrived = backend.measure(record.instance_uuid,
                                  block_migration=bool(disks),
                                  disk_targets=disks or None,
                                  vtpm_secret=vtpm_secret)
    except base.InstanceStateError as error:
        raise IntegrityFailure(error.item or base.VTPM_STATE, str(error))
    differing = base.compare(manifest.items, arrived)
    if differing:
        others = ('; so do %s' % ', '.join(differing[1:])
                  if len(differing) > 1 else '')
        raise IntegrityFailure(differing[0], 'differs from what %s measured '
                               'when the transfer ended%s'
                               % (record.source_host, others))
    return manifest


def quarantine(driver, instance, record, host, failure):
    """Pause the instance, record QUARANTINED, announce it, and raise
    IntegrityCheckFailed (Nova records it as the instance's fault).
    record is None when no migration record exists at all."""
    reason = '%s: %s' % (failure.item, failure.reason)
    migration = record.uuid if record is not None else 'unrecorded'
    source = record.source_host if record is not None else None
    try:
        driver.pause(instance)
    except Exception as error:      # the quarantine goes on regardless
        LOG.error('Korora could not pause instance %s for quarantine: %s',
                  instance.uuid, error)
    try:
        if record is not None:
            records.transition(record.uuid, host, states.QUARANTINED,
                               details={'item': failure.item},
                               reason=reason)
    except exception.KororaError as error:
        LOG.error('Korora: migration %s not recorded as quarantined: %s',
                  migration, error)
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
    raise IntegrityCheckFailed(host=host, reason=reason,
                               migration=migration)
