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
"""

import random
import time

from oslo_db import exception as db_exception
from oslo_log import log as logging
from oslo_utils import uuidutils
import sqlalchemy as sa

from korora_nova.db import api as db
from korora_nova.db import models
from korora_nova.db import audit_log
from korora_nova import exception
from korora_nova.migration import audit
from korora_nova.migration import states

LOG = logging.getLogger(__name__)

# Appends racing for the same audit seq: the loser retries.
MAX_ATTEMPTS = 10


def _retrying(function):
    """Run function() (one transaction) again when its audit entry lost
    the race for the next seq to a concurrent append (PostgreSQL, MySQL;
    SQLite serializes writers), after a short random pause."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return function()
        except (_SeqTaken, db_exception.DBDeadlock):
            if attempt == MAX_ATTEMPTS - 1:
                raise exception.AuditError(
                    'could not append to the audit log: %d concurrent '
                    'appends won in a row' % MAX_ATTEMPTS)
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))


class _SeqTaken(Exception):
    """Another transaction appended the same audit seq first."""


def _append(session, **fields):
    try:
        return audit_log.append(session, **fields)
    except db_exception.DBDuplicateEntry:
        raise _SeqTaken()


def create(migration_uuid, instance_uuid, source_host, dest_host,
           host=None, details=None):
    """Record a new migration in REQUESTED (and its audit entry).

    migration_uuid is Nova's migration UUID; None generates one. host is
    the host that records the request (the source by default). Returns
    the record.
    """
    migration_uuid = migration_uuid or uuidutils.generate_uuid()
    host = host or source_host

    def _create():
        now = audit_log.now()
        record = models.Migration(
            uuid=migration_uuid, instance_uuid=instance_uuid,
            source_host=source_host, dest_host=dest_host,
            state=states.INITIAL, created_at=now, updated_at=now)
        entry_details = {'instance_uuid': instance_uuid,
                         'source_host': source_host,
                         'dest_host': dest_host}
        entry_details.update(details or {})
        with db.writer() as session:
            session.add(record)
            try:
                session.flush()
            except db_exception.DBDuplicateEntry:
                raise exception.MigrationExists(
                    'migration %s is already recorded' % migration_uuid)
            entry = _append(session, host=host,
                            step=states.STEPS[states.INITIAL],
                            migration_uuid=migration_uuid, from_state=None,
                            to_state=states.INITIAL, details=entry_details,
                            created_at=now)
        return record, entry

    record, entry = _retrying(_create)
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

    def _transition():
        old = get(migration_uuid).state
        if expected is not None and expected != old:
            raise exception.ConcurrentTransition(migration_uuid, expected,
                                                 new_state, old)
        states.check(migration_uuid, old, new_state)
        now = audit_log.now()
        values = {'state': new_state, 'updated_at': now}
        if reason is not None:
            values['reason'] = reason
        if manifest is not None:
            values['manifest'] = manifest
        if source_counter is not None:
            values['source_counter'] = source_counter
        # The conditional UPDATE comes first: it takes the write lock
        # (SQLite) or the row lock before the audit log's head is read.
        with db.writer() as session:
            won = session.query(models.Migration).filter_by(
                uuid=migration_uuid, state=old).update(
                values, synchronize_session=False)
            if not won:
                raise exception.ConcurrentTransition(
                    migration_uuid, old, new_state,
                    _state_now(session, migration_uuid))
            entry = _append(session, host=host,
                            step=states.STEPS[new_state],
                            migration_uuid=migration_uuid, from_state=old,
                            to_state=new_state, details=entry_details,
                            created_at=now)
        return old, entry

    try:
        old, entry = _retrying(_transition)
    except exception.IllegalTransition as error:
        LOG.warning('refused by %s: %s', host, error)
        raise
    LOG.info('migration %s: %s -> %s by %s (audit seq %d)%s',
             migration_uuid, old, new_state, host, entry.seq,
             ': %s' % reason if reason else '')
    return get(migration_uuid)


def _state_now(session, migration_uuid):
    row = session.query(models.Migration.state).filter_by(
        uuid=migration_uuid).first()
    return row[0] if row else 'deleted'


def get(migration_uuid):
    with db.reader() as session:
        record = session.get(models.Migration, migration_uuid)
    if record is None:
        raise exception.MigrationNotFound('no migration %s' % migration_uuid)
    return record


def list(limit=None):
    """Every migration, the most recently changed first (by its newest
    audit entry: timestamps keep whole seconds only)."""
    latest = sa.select(sa.func.max(models.AuditEntry.seq)).where(
        models.AuditEntry.migration_uuid ==
        models.Migration.uuid).scalar_subquery()
    with db.reader() as session:
        query = session.query(models.Migration).order_by(
            latest.desc(), models.Migration.updated_at.desc(),
            models.Migration.created_at.desc())
        if limit is not None:
            query = query.limit(limit)
        return query.all()


def in_flight():
    """Migrations not in a final state, oldest first: what a restarted
    service must finish or roll back."""
    with db.reader() as session:
        return session.query(models.Migration).filter(
            models.Migration.state.notin_(sorted(states.FINAL))).order_by(
            models.Migration.created_at, models.Migration.uuid).all()


def in_flight_for_instance(instance_uuid, connection=None):
    """The instance's migrations not in a final state, oldest first
    (from the database at connection, default [korora_database])."""
    with db.reader(connection) as session:
        return session.query(models.Migration).filter(
            models.Migration.instance_uuid == instance_uuid,
            models.Migration.state.notin_(sorted(states.FINAL))).order_by(
            models.Migration.created_at, models.Migration.uuid).all()


def highest_committed_counter(source_host, instance_uuid):
    """The highest counter value a committed migration of the instance
    from source_host was bound to, or None. (Per instance: migrations of
    other instances from the same source may run and commit meanwhile.)
    """
    with db.reader() as session:
        return session.query(sa.func.max(
            models.Migration.source_counter)).filter(
            models.Migration.source_host == source_host,
            models.Migration.instance_uuid == instance_uuid,
            models.Migration.state == states.COMMITTED).scalar()


def history(migration_uuid):
    """The migration's audit entries, in order."""
    return audit.entries(migration_uuid)
