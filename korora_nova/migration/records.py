"""Migration records: each live migration and its state, in the verifier's
database.

Every change of state reads the record, checks the move against the
state machine, then in one transaction moves the record with a
conditional UPDATE (``WHERE state = <the state it was read in>``) and
appends the audit entry: either both are written or neither is, and of
two services moving the same migration from the same state only one
wins. A refused move changes nothing, is logged and raises
IllegalTransition.

A restarted service calls in_flight() to find the migrations it has to
finish or roll back (states.RESUME says which).

Here are the rules (states), what each audit entry keeps and the log;
the SQL, the transactions and their retries are korora_nova.db.api's.
"""

import datetime

from oslo_log import log as logging
from oslo_utils import uuidutils

from korora_nova.db import api as db
from korora_nova import exception
from korora_nova.migration import audit
from korora_nova.migration import states

LOG = logging.getLogger(__name__)


def create(migration_uuid, instance_uuid, source_host, dest_host,
           host=None, details=None):
    """Record a new migration in REQUESTED (and its audit entry).

    migration_uuid is Nova's migration UUID; None generates one. host is
    the host that records the request (the source by default). Returns
    the record.
    """
    migration_uuid = migration_uuid or uuidutils.generate_uuid()
    host = host or source_host
    entry_details = {'instance_uuid': instance_uuid,
                     'source_host': source_host,
                     'dest_host': dest_host}
    entry_details.update(details or {})
    record, entry = db.migration_create(
        migration_uuid, instance_uuid, source_host, dest_host,
        states.INITIAL, host, states.STEPS[states.INITIAL],
        details=entry_details)
    LOG.info('migration %s of instance %s from %s to %s: %s (audit seq %d)',
             migration_uuid, instance_uuid, source_host, dest_host,
             states.INITIAL, entry.seq)
    return record


def transition(migration_uuid, host, new_state, details=None, reason=None,
               expected=None, manifest=None, source_counter=None):
    """Move a migration to new_state; returns the updated record.

    host is the host that ran the step; details what the audit entry
    keeps (bytes values are recorded as their SHA-256 digest); reason is
    kept on the record (why it was aborted or quarantined). expected, if
    given, is the state the caller believes the migration is in.

    Raises IllegalTransition (nothing written, the refusal logged) when
    the move is not allowed from the stored state, ConcurrentTransition
    (an IllegalTransition) when another service moved it first, and
    MigrationNotFound. manifest and source_counter, if given, are stored
    on the record in the same transaction.
    """
    entry_details = dict(details or {})
    if reason is not None:
        entry_details['reason'] = reason
    values = {name: value for name, value in (
        ('reason', reason), ('manifest', manifest),
        ('source_counter', source_counter)) if value is not None}

    def check(old):
        if expected is not None and expected != old:
            raise exception.ConcurrentTransition(migration_uuid, expected,
                                                 new_state, old)
        states.check(migration_uuid, old, new_state)

    try:
        # No step for what is no state: check refuses it.
        old, entry = db.migration_update_state(
            migration_uuid, new_state, check, host,
            states.STEPS.get(new_state), details=entry_details,
            values=values)
    except exception.MigrationStateChanged as changed:
        error = exception.ConcurrentTransition(
            migration_uuid, changed.expected, new_state, changed.actual)
        LOG.warning('refused by %s: %s', host, error)
        raise error from None
    except exception.IllegalTransition as error:
        LOG.warning('refused by %s: %s', host, error)
        raise
    LOG.info('migration %s: %s -> %s by %s (audit seq %d)%s',
             migration_uuid, old, new_state, host, entry.seq,
             ': %s' % reason if reason else '')
    return get(migration_uuid)


def get(migration_uuid):
    """The migration's record; MigrationNotFound."""
    return db.migration_get(migration_uuid)


def age(record):
    """Seconds since the record last moved (whole seconds: the database
    keeps no more), by this host's clock."""
    return max(0, int((db.utcnow() - record.updated_at).total_seconds()))


def list(limit=None):
    """Every migration, the most recently changed first (by its newest
    audit entry: timestamps keep whole seconds only)."""
    return db.migration_list(limit)


def in_flight():
    """Migrations not in a final state, oldest first: what a restarted
    service must finish or roll back."""
    return db.migrations_in_flight(states.FINAL)


def in_flight_for_instance(instance_uuid, connection=None):
    """The instance's migrations not in a final state, oldest first
    (from the database at connection, default [korora_database])."""
    return db.migrations_in_flight(states.FINAL, instance_uuid,
                                   connection=connection)


def aborted_recently(dest_host, within, limit=50):
    """Migrations to dest_host aborted within the last within seconds
    (the destination may hold what a transfer brought it)."""
    since = db.utcnow() - datetime.timedelta(seconds=within)
    return db.migrations_ended_recently(states.ABORTED, dest_host, since,
                                        limit)


def highest_committed_counter(source_host, instance_uuid):
    """The highest counter value a committed migration of the instance
    from source_host was bound to, or None. (Per instance: migrations of
    other instances from the same source may run and commit meanwhile.)
    """
    return db.migration_highest_counter(source_host, instance_uuid,
                                        states.COMMITTED)


def history(migration_uuid):
    """The migration's audit entries, in order."""
    return audit.entries(migration_uuid)


def checked_manifest(record):
    """(the source's integrity manifest, None) when its signature holds
    under the source's enrolled AK, (None, the reason) when it does not,
    (None, None) when the source has not measured yet."""
    # Here, not at the top: the manifest brings oslo.messaging, which
    # korora-manage's other migration commands must not load (it selects
    # oslo.service's eventlet backend, which warns on stderr).
    from korora_nova.migration import manifest as manifest_module

    if not record.manifest:
        return None, None
    try:
        manifest, quote = manifest_module.load(record.manifest)
        manifest_module.check_signature(
            manifest, quote, db.host_get(record.source_host).ak_public,
            record.source_host)
    except (exception.ManifestError, exception.KororaError) as error:
        return None, str(error)
    return manifest, None
