"""The verifier's database operations, through oslo.db's enginefacade.

All of korora's SQL is here: the rest of the code calls these functions
and never holds a session. Every function opens its own transaction:
the verifier's workers and the scheduler filter share the database, not
Python objects. Rows come back detached (oslo.db does not expire them on
commit).

Every write of a row that decides trust (a host, a policy version, a
verdict, a host's current trust) and every move of a migration appends
its audit entry in the same transaction (_record, _append): the row and
its entry commit together or not at all. How entries are built and
hashed is audit_log's; what the rules of a migration's moves are is
korora_nova.migration's.

Every public function is one call of the database, retried whole by
oslo.db's wrap_db_retry when the database was busy (a lock, a deadlock,
a serialization failure) or the connection dropped, as [korora_database]
db_max_retries and db_*retry_interval say (_retried). What still fails
reaches the caller as exception.DatabaseError, never as a driver's,
SQLAlchemy's or oslo.db's error. Appends to the audit log run one at a
time (_appending), so they do not race for the next entry.
"""

import collections
import contextlib
import datetime
import functools
import json
import sqlite3
import threading

from oslo_config import cfg
from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exception
from oslo_db.sqlalchemy import enginefacade
import sqlalchemy as sa

from korora_nova import conf
from korora_nova.db import audit_log
from korora_nova.db import models
from korora_nova import exception

CONF = conf.CONF

_lock = threading.Lock()
_facade = {}
# The scheduler filter's engines, by URL (host_trust_for_scheduling).
_trust_engines = {}

# The service that disable_db_access() switched database access off for.
_disabled_for = None
# The service that read_only() kept from writing.
_read_only_for = None


def disable_db_access(service):
    """Refuse every later use of [korora_database] in this process.

    The processes of a compute host (nova-compute, korora-vtpm-manager,
    korora-libvirt-hook) hold no database credentials: root there must
    not reach a trust decision. Like Nova's DISABLE_DB_ACCESS for
    nova-compute, a stray call then fails loudly instead of opening a
    local default database.
    """
    global _disabled_for
    with _lock:
        _disabled_for = service
    # Engines opened before (a preflight, a test) go too.
    dispose()


def read_only(service):
    """Refuse every later write of this process to [korora_database].

    korora-api reads the verifier's database and sends every write to
    korora-verifier, the only writer: a write attempted here anyway is a
    bug, and fails loudly instead of bypassing the verifier.
    """
    global _read_only_for
    with _lock:
        _read_only_for = service


def refuse_configured_connection(conf, service):
    """ConfigurationError if [korora_database] connection is set for this
    process (a configuration file, the command line, an override): a
    compute host's service must not even hold the credentials."""
    if _connection_configured(conf):
        raise exception.ConfigurationError(
            '%s must not hold database credentials: remove '
            '[korora_database] connection from its configuration'
            % service)


def _connection_configured(conf):
    """Set by the operator (a file, the command line, the environment)
    or by the process itself (set_override), not korora's default."""
    location = conf.get_location('connection', 'korora_database')
    if location is None or not conf.korora_database.connection:
        return False
    return (location.location.is_user_controlled or
            location.location == cfg.Locations.set_override)


def _check_access():
    if _disabled_for is not None:
        raise exception.DatabaseError(
            '%s has no database access: only korora-verifier and '
            'korora-manage on the control plane use [korora_database]'
            % _disabled_for)


@enginefacade.transaction_context_provider
class _Context:
    """What enginefacade needs to hang a transaction on."""


def context_manager(url=None):
    """The process's transaction factory for [korora_database] (or for
    the database at url)."""
    with _lock:
        _check_access()
        url = url or CONF.korora_database.connection
        factory = _facade.get(url)
        if factory is None:
            factory = enginefacade.transaction_context()
            factory.configure(
                connection=url,
                sqlite_fk=True,
                max_retries=CONF.korora_database.max_retries,
                connection_recycle_time=(
                    CONF.korora_database.connection_recycle_time))
            try:
                factory.writer.get_engine()
            except (ImportError, db_exception.DBError,
                    sa.exc.ArgumentError) as error:
                raise exception.DatabaseError('cannot use the database %s: %s'
                                              % (safe_url(url), error))
            _facade[url] = factory
        return factory


def safe_url(url):
    """The connection URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, TypeError):
        return '(unparsable URL)'


# Driver errors that say the database was busy, not that the request
# was wrong: worth another try.
_SQLITE_BUSY = ('database is locked', 'database table is locked')
# serialization_failure, deadlock_detected, lock_not_available (a
# lock_timeout or NOWAIT).
_POSTGRESQL_BUSY = frozenset(['40001', '40P01', '55P03'])
# ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK.
_MYSQL_BUSY = frozenset([1205, 1213])


def _driver_error(error):
    """The driver's exception behind an oslo.db or SQLAlchemy one."""
    if isinstance(error, db_exception.DBError):
        error = error.inner_exception
    return getattr(error, 'orig', error)


def _is_busy(error):
    """True when error (any exception) says the database was locked or
    busy: SQLite's "database is locked", a PostgreSQL serialization or
    lock failure, a MariaDB lock wait timeout, a deadlock."""
    if isinstance(error, db_exception.DBDeadlock):
        return True
    driver_error = _driver_error(error)
    if isinstance(driver_error, sqlite3.OperationalError):
        return str(driver_error).startswith(_SQLITE_BUSY)
    if getattr(driver_error, 'pgcode', None) in _POSTGRESQL_BUSY:
        return True
    return (type(driver_error).__module__.startswith('pymysql') and
            bool(driver_error.args) and driver_error.args[0] in _MYSQL_BUSY)


def _database_error(error, url, retries):
    """The DatabaseError a caller gets for error, one line."""
    detail = str(error).splitlines()[0] if str(error) else (
        type(error).__name__)
    tries = '%d %s' % (retries + 1, 'try' if retries == 0 else 'tries')
    if _is_busy(error):
        reason = ('database %s is busy: still locked by another '
                  'transaction after %s (%s)' % (safe_url(url), tries,
                                                 detail))
    elif isinstance(error, db_exception.DBConnectionError):
        reason = ('database %s cannot be reached after %s (%s)'
                  % (safe_url(url), tries, detail))
    else:
        reason = 'database %s: %s' % (safe_url(url), detail)
    return exception.DatabaseError(reason)


def _calls_database(retry):
    """Decorate a function that runs whole transactions (it must not be
    called inside one).

    retry: run it again (oslo.db's wrap_db_retry) when the database was
    busy or the connection dropped, as [korora_database] db_max_retries,
    db_retry_interval, db_inc_retry_interval and db_max_retry_interval
    say. Then, and for every other database error, DatabaseError naming
    the database (the connection keyword's, or [korora_database]
    connection).
    """
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            options = CONF.korora_database
            retries = max(options.db_max_retries, 0) if retry else 0
            call = oslo_db_api.wrap_db_retry(
                max_retries=retries,
                retry_interval=options.db_retry_interval,
                inc_retry_interval=options.db_inc_retry_interval,
                max_retry_interval=options.db_max_retry_interval,
                retry_on_deadlock=True, retry_on_disconnect=True,
                exception_checker=_is_busy)(function)
            try:
                return call(*args, **kwargs)
            except (db_exception.DBError, sa.exc.SQLAlchemyError) as error:
                raise _database_error(
                    error, kwargs.get('connection') or options.connection,
                    retries)
        return wrapper
    return decorate


# What the verifier and korora-manage call.
_retried = _calls_database(retry=True)
# What nova-scheduler's filter calls for every request: an unusable
# database must fail it at once (no host passes), not stall it.
_not_retried = _calls_database(retry=False)


def _reader(url=None):
    """A read transaction on [korora_database] (or the database at url).
    """
    return context_manager(url).reader.using(_Context())


def _writer():
    if _read_only_for is not None:
        raise exception.DatabaseError(
            '%s only reads the database: every write goes through '
            'korora-verifier' % _read_only_for)
    return context_manager().writer.using(_Context())


def get_engine():
    return context_manager().writer.get_engine()


def _trust_engine():
    """The engine of host_trust_for_scheduling, which nova-scheduler runs
    for every request: a plain SQLAlchemy engine, without oslo.db's
    session, its transaction and its yield at every connection check-in,
    which cost more than the query at 100 hosts. Server connections are
    pooled and checked before use; SQLite's are opened for each request,
    as oslo.db opens them, so that a database file removed or replaced is
    noticed by the next request."""
    with _lock:
        _check_access()
        url = CONF.korora_database.connection
        engine = _trust_engines.get(url)
        if engine is None:
            try:
                if sa.engine.make_url(url).get_backend_name() == 'sqlite':
                    options = {'poolclass': sa.pool.NullPool}
                else:
                    options = {'pool_pre_ping': True, 'pool_recycle': (
                        CONF.korora_database.connection_recycle_time)}
                engine = sa.create_engine(url, **options)
            except (ImportError, sa.exc.ArgumentError) as error:
                raise exception.DatabaseError('cannot use the database %s: %s'
                                              % (safe_url(url), error))
            _trust_engines[url] = engine
        return engine


def dispose():
    """Forget engines (tests, and after a fork)."""
    with _lock:
        for factory in _facade.values():
            try:
                factory.writer.get_engine().dispose()
            except db_exception.DBError:
                pass
        _facade.clear()
        for engine in _trust_engines.values():
            engine.dispose()
        _trust_engines.clear()


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# Audited writes

def _audit_head(session):
    """The newest audit entry, or None when the log is empty."""
    return session.query(models.AuditEntry).order_by(
        models.AuditEntry.seq.desc()).first()


@contextlib.contextmanager
def _appending():
    """A write transaction that appends to the audit log.

    Its first statement updates the chain's lock row: on PostgreSQL and
    MariaDB that row lock makes every other append wait until this
    transaction ends, on SQLite a write as the first statement takes
    the database's write lock, waiting for it (the busy timeout) where a
    transaction that read first would fail at once. So the head an
    entry follows is read when no other append can commit before it.
    """
    with _writer() as session:
        locked = session.execute(
            sa.update(models.AuditChainLock).where(
                models.AuditChainLock.id == 1).values(id=1)).rowcount
        if not locked:
            # A database whose lock row went missing: put it back (a
            # concurrent append doing the same makes one of them retry).
            _insert(session, models.AuditChainLock(id=1),
                    db_exception.RetryRequest(exception.AuditError(
                        'the audit log\'s lock row is contended')))
        yield session


def _append(session, host, step, details=None, head=None, **fields):
    """Append an audit entry within session's transaction (an
    _appending one); returns it.

    head: the entry it follows, when the caller just appended it (else
    it is read). fields: migration_uuid, from_state, to_state,
    created_at (see audit_log.new_entry). Its seq taken already (a
    writer that did not take the lock) runs the transaction again
    (RetryRequest).
    """
    text = audit_log.canonical_details(details)
    if head is None:
        head = _audit_head(session)
    entry = audit_log.new_entry(head, text, host, step, **fields)
    _insert(session, entry, db_exception.RetryRequest(exception.AuditError(
        'could not append entry %d to the audit log: another writer '
        'took its seq every time' % entry.seq)))
    return entry


def _insert(session, row, duplicate):
    """Add row now; raise duplicate (an exception) when a row with its
    key exists already."""
    session.add(row)
    try:
        session.flush()
    except db_exception.DBDuplicateEntry:
        raise duplicate


def _record(session, host, step, rows=(), removed=(), details=None,
            requester=None):
    """Append the audit entry of a trust-deciding write: rows written
    (their digests) and row keys removed; requester: who asked through
    korora-api (the Keystone user and project), if it came from there."""
    if requester:
        details = dict(details or {}, requested_by=requester)
    return _append(session, host, step,
                   details=audit_log.trust_details(rows, removed, details))


# Hosts

@_retried
def host_create(identity, policy_name=None, requester=None):
    """Store an enrolled host (identity: attestation.enrollment.Identity).

    Refused when its TPM (its EK or its AK) is enrolled already under
    another name: one TPM must never vouch for two hosts.
    """
    now = utcnow()
    host = models.Host(
        name=identity.host, ek_type=identity.ek_type,
        ek_certificate=identity.ek_certificate,
        ek_certificate_sha256=identity.ek_certificate_sha256,
        ek_public=identity.ek_public, ak_public=identity.ak_public,
        ak_name=identity.ak_name,
        trust_on_first_use=identity.trust_on_first_use,
        policy_name=policy_name, enrolled_at=now,
        next_attestation_at=now)
    with _appending() as session:
        _refuse_enrolled_tpm(session, identity)
        _insert(session, host, exception.HostExists(
            'host %s is already enrolled; remove it first to enroll it '
            'again' % identity.host))
        _record(session, identity.host, audit_log.HOST_ENROLL, [host],
                details={'ek_certificate_sha256':
                         identity.ek_certificate_sha256,
                         'ak_name': identity.ak_name,
                         'trust_on_first_use':
                         identity.trust_on_first_use},
                requester=requester)
    return host


def _refuse_enrolled_tpm(session, identity):
    """EnrollmentError when another host holds identity's EK or AK."""
    Host = models.Host
    other = session.query(Host).filter(
        Host.name != identity.host,
        sa.or_(Host.ek_certificate_sha256 == identity.ek_certificate_sha256,
               Host.ek_public == identity.ek_public,
               Host.ak_name == identity.ak_name)).first()
    if other is None:
        return
    if other.ak_name == identity.ak_name:
        what = 'AK %s' % identity.ak_name
    elif other.ek_certificate_sha256 == identity.ek_certificate_sha256:
        what = 'EK certificate sha256 %s' % identity.ek_certificate_sha256
    else:
        what = 'EK public key'
    raise exception.EnrollmentError(
        '%s: its TPM is already enrolled as host %s (same %s): one TPM '
        'cannot vouch for two hosts; remove %s first if the machine was '
        'renamed' % (identity.host, other.name, what, other.name))


@_retried
def host_get(name):
    with _reader() as session:
        host = session.query(models.Host).filter_by(name=name).first()
    if host is None:
        raise exception.HostNotFound('host %s is not enrolled' % name)
    return host


@_retried
def host_list():
    with _reader() as session:
        return session.query(models.Host).order_by(models.Host.name).all()


@_retried
def host_delete(name, requester=None):
    """Forget a host and its current trust (its verdicts stay)."""
    with _appending() as session:
        count = session.query(models.Host).filter_by(name=name).delete()
        if not count:
            raise exception.HostNotFound('host %s is not enrolled' % name)
        session.query(models.HostTrust).filter_by(
            host_name=name).delete()
        _record(session, name, audit_log.HOST_REMOVE,
                removed=[('hosts', name), ('host_trust', name)],
                requester=requester)


@_retried
def host_set_policy(name, policy_name, requester=None):
    with _appending() as session:
        host = session.query(models.Host).filter_by(
            name=name).with_for_update().first()
        if host is None:
            raise exception.HostNotFound('host %s is not enrolled' % name)
        host.policy_name = policy_name
        session.flush()
        _record(session, name, audit_log.POLICY_ASSIGN, [host],
                details={'policy': policy_name}, requester=requester)


def hosts_claim_due(interval, limit=100):
    """Claim up to limit hosts whose scheduled attestation is due, the
    most overdue first, and move their schedule one interval on.

    One statement per claim where the database can return what it
    updated (PostgreSQL, SQLite): UPDATE ... WHERE id IN (SELECT ... FOR
    UPDATE SKIP LOCKED) RETURNING. MariaDB cannot, so there it is a
    SELECT ... FOR UPDATE SKIP LOCKED and an UPDATE in one transaction.
    Either way, verifier workers sharing the database claim disjoint
    hosts without waiting for each other (SQLite has one writer at a
    time). Returns the claimed hosts as ClaimedHost rows: what an
    attestation needs of them, so it reads nothing more per host.

    A worker that dies after its claim leaves its hosts to the next
    interval, when they are due again.
    """
    now = utcnow()
    next_at = now + datetime.timedelta(seconds=interval)
    return _claim_due(now, next_at, limit)


# What an attestation reads of a claimed host (attestation.Attestor).
_CLAIMED = (models.Host.id, models.Host.name, models.Host.ak_public,
            models.Host.policy_name, models.Host.last_reset_count,
            models.Host.last_clock)


@_retried
def _claim_due(now, next_at, limit):
    Host = models.Host
    due = sa.select(Host.id).where(Host.next_attestation_at <= now).order_by(
        Host.next_attestation_at).limit(limit)
    with _writer() as session:
        dialect = session.get_bind().dialect
        if not dialect.update_returning:
            # Under REPEATABLE READ, InnoDB keeps the locks of every row a
            # locking read examined, matching or not (a small table is
            # read whole): READ COMMITTED lets go of the others.
            session.connection(execution_options={
                'isolation_level': 'READ COMMITTED'})
        if dialect.update_returning:
            return session.execute(
                sa.update(Host).where(Host.id.in_(
                    due.with_for_update(skip_locked=True).scalar_subquery()))
                .values(next_attestation_at=next_at)
                .returning(*_CLAIMED)).all()
        # InnoDB locks every row a locking read examines, before ORDER BY
        # and LIMIT: the due hosts are read without locks, then locked by
        # their keys, skipping those another worker holds.
        candidates = list(session.scalars(due))
        claimed = session.execute(
            sa.select(*_CLAIMED).where(
                Host.id.in_(candidates), Host.next_attestation_at <= now)
            .with_for_update(skip_locked=True)).all() if candidates else []
        if claimed:
            session.execute(
                sa.update(Host).where(Host.id.in_(
                    [host.id for host in claimed]))
                .values(next_attestation_at=next_at))
        return claimed


# Policies

@_retried
def policy_create(reference, active=True, signature=None, requester=None):
    """Store a reference policy (attestation.policy.ReferencePolicy) and
    its operator's signature (a compact JWS; see attestation.policy)."""
    row = models.Policy(name=reference.name, version=reference.version,
                        document=json.dumps(reference.to_json(),
                                            sort_keys=True),
                        active=active, created_at=utcnow(),
                        signature=signature)
    with _appending() as session:
        _insert(session, row, exception.PolicyExists(
            'policy %s v%d already exists; policies are immutable: '
            'import a new version' % (reference.name, reference.version)))
        _record(session, audit_log.VERIFIER, audit_log.POLICY_IMPORT,
                [row], details={'policy': reference.label,
                                'active': active}, requester=requester)
    return row


@_retried
def policy_list():
    with _reader() as session:
        return session.query(models.Policy).order_by(
            models.Policy.name, models.Policy.version).all()


@_retried
def policy_get(name, version=None):
    with _reader() as session:
        query = session.query(models.Policy).filter_by(name=name)
        if version is not None:
            query = query.filter_by(version=version)
        row = query.order_by(models.Policy.version.desc()).first()
    if row is None:
        raise exception.PolicyNotFound('no policy %s%s' % (
            name, ' v%d' % version if version is not None else ''))
    return row


@_retried
def policies_active(name):
    """Every active version of a policy, newest first."""
    with _reader() as session:
        return session.query(models.Policy).filter_by(
            name=name, active=True).order_by(
            models.Policy.version.desc()).all()


@_retried
def policy_set_active(name, version, active, requester=None):
    step = (audit_log.POLICY_ACTIVATE if active else
            audit_log.POLICY_DEACTIVATE)
    with _appending() as session:
        row = session.query(models.Policy).filter_by(
            name=name, version=version).with_for_update().first()
        if row is None:
            raise exception.PolicyNotFound(
                'no policy %s v%d' % (name, version))
        row.active = active
        session.flush()
        _record(session, audit_log.VERIFIER, step, [row],
                details={'policy': '%s v%d' % (name, version)},
                requester=requester)


# Verdicts and trust

def record_verdict(host_name, verdict, nonce=None, quote=None,
                   clock_info=None):
    """Store a verdict and make it the host's current trust.

    Returns (verdict row, previously trusted or None if no verdict yet);
    HostNotFound if the host is not enrolled. The TPM clock of a trusted
    quote becomes the host's new floor.
    """
    written = record_verdicts([VerdictRecord(host_name, verdict, nonce,
                                             quote, clock_info)])[0]
    if written is None:
        raise exception.HostNotFound('host %s is not enrolled' % host_name)
    return written


class VerdictRecord(collections.namedtuple(
        'VerdictRecord', 'host_name verdict nonce quote clock_info requester',
        defaults=(None,))):
    """One verdict to store: the quote and nonce it judged, the TPM
    clock of a trusted quote (None otherwise), and who asked through
    korora-api (None for the verifier's own schedule)."""


RECORD_ATTEMPTS = 3


@_retried
def record_verdicts(records):
    """Store verdicts (VerdictRecords) in one transaction, in order, each
    with its audit entry; returns [(verdict row, previously trusted or
    None)], one per record, or None for a host no longer enrolled (its
    verdict is not stored: it must not give trust to a removed host).

    One transaction takes the audit log's lock once for the whole batch:
    the verifier's scheduled rounds write their verdicts this way.
    """
    # Two workers may record verdicts of one host at once (a PCR-change
    # attestation beside a scheduled one): the trust rows are locked,
    # and the loser of a race to create one runs the batch again rather
    # than losing its verdicts.
    for attempt in range(RECORD_ATTEMPTS):
        try:
            return _record_verdicts(records)
        except db_exception.DBDuplicateEntry:
            if attempt == RECORD_ATTEMPTS - 1:
                raise exception.DatabaseError(
                    '%s: could not record a verdict: the trust row is '
                    'contended' % ', '.join(sorted(
                        {record.host_name for record in records})))


def _verdict_row(record, created_at):
    verdict, quote = record.verdict, record.quote
    return models.Verdict(
        host_name=record.host_name, trusted=verdict.trusted,
        summary=verdict.summary(),
        reasons=json.dumps([{'code': r.code, 'message': r.message}
                            for r in verdict.reasons]),
        policy=verdict.policy,
        nonce=record.nonce.hex() if record.nonce else None,
        pcr_values=json.dumps(verdict.to_json()['pcr_values']),
        quote_message=quote.message if quote else None,
        quote_signature=quote.signature if quote else None,
        created_at=created_at)


def _record_verdicts(records):
    # To the second: the audited digest must be what every backend
    # gives back (MySQL rounds DATETIME's fractions away).
    now = utcnow().replace(microsecond=0)
    names = sorted({record.host_name for record in records})
    answers, floors = [], {}
    with _appending() as session:
        # Removing a host takes the audit log's lock too, so a host
        # enrolled now stays enrolled until this commits.
        enrolled = set(session.scalars(sa.select(models.Host.name).where(
            models.Host.name.in_(names))))
        kept = [record for record in records if record.host_name in enrolled]
        rows = {id(record): _verdict_row(record, now) for record in kept}
        session.add_all(rows.values())
        session.flush()
        trusts = {trust.host_name: trust for trust in session.query(
            models.HostTrust).filter(models.HostTrust.host_name.in_(
                sorted(enrolled))).with_for_update()}
        head = _audit_head(session) if kept else None
        for record in records:
            row = rows.get(id(record))
            if row is None:
                answers.append(None)
                continue
            verdict = record.verdict
            trust = trusts.get(record.host_name)
            previous = trust.trusted if trust is not None else None
            if trust is None:
                trust = trusts[record.host_name] = models.HostTrust(
                    host_name=record.host_name)
                session.add(trust)
            trust.trusted = verdict.trusted
            trust.summary = verdict.summary()
            trust.verified_at = now
            trust.verdict_id = row.id
            if verdict.trusted and record.clock_info is not None:
                floors[record.host_name] = record.clock_info
            details = {'trusted': verdict.trusted, 'policy': verdict.policy}
            if record.requester:
                details['requested_by'] = record.requester
            head = _append(session, record.host_name, audit_log.VERDICT,
                           details=audit_log.trust_details(
                               [row, trust], details=details),
                           head=head)
            answers.append((row, previous))
        if floors:
            hosts = models.Host.__table__   # executemany: Core, not ORM
            session.connection().execute(
                hosts.update().where(
                    hosts.c.name == sa.bindparam('host_name')).values(
                    last_reset_count=sa.bindparam('reset_count'),
                    last_clock=sa.bindparam('clock')),
                [{'host_name': name, 'reset_count': clock.reset_count,
                  'clock': clock.clock} for name, clock in floors.items()])
    return answers


@_not_retried
def host_trust_all():
    """{host: (trusted, summary, verified_at)} for every host with a
    verdict: one query, whatever the number of hosts."""
    query = sa.select(models.HostTrust.host_name, models.HostTrust.trusted,
                      models.HostTrust.summary, models.HostTrust.verified_at)
    with _reader() as session:
        rows = session.connection().execute(query)
        return {name: (trusted, summary, verified_at)
                for name, trusted, summary, verified_at in rows}


_PASSES = (True, None, None)
_TRUST_BATCH = 500
_FRESH_AND_TRUSTED = sa.and_(
    models.HostTrust.trusted,
    models.HostTrust.verified_at >= sa.bindparam('cutoff'))
_SCHEDULING_QUERY = sa.select(
    models.HostTrust.host_name, _FRESH_AND_TRUSTED,
    sa.case((_FRESH_AND_TRUSTED, None), else_=models.HostTrust.summary),
    sa.case((_FRESH_AND_TRUSTED, None),
            else_=models.HostTrust.verified_at))


@_not_retried
def host_trust_for_scheduling(cutoff):
    """{host: (passes, summary, verified_at)} for every host with a
    verdict, read again at every call (nothing is cached); passes: the
    verdict is trusted and made at cutoff or later.

    What nova-scheduler's filter reads for every request: one query,
    whatever the number of hosts. The database judges each row, and
    sends summary and verified_at only for the hosts that do not pass:
    turning each row's time into a datetime cost more than the query.
    """
    trust = {}
    with _trust_engine().connect() as connection:
        result = connection.execute(_SCHEDULING_QUERY, {'cutoff': cutoff})
        # Rows fetched in batches and dropped, and one tuple for every
        # host that passes: 10,000 objects kept at once set off Python's
        # full garbage collections, which cost more than the query.
        for rows in result.partitions(_TRUST_BATCH):
            for name, passes, summary, verified_at in rows:
                trust[name] = _PASSES if passes else (False, summary,
                                                      verified_at)
    return trust


@_retried
def verdicts_for_host(host_name, limit=20):
    with _reader() as session:
        return session.query(models.Verdict).filter_by(
            host_name=host_name).order_by(
            models.Verdict.created_at.desc(),
            models.Verdict.id.desc()).limit(limit).all()


# Migrations (their states and the rules of their moves:
# korora_nova.migration.states and records)

@_retried
def migration_create(migration_uuid, instance_uuid, source_host, dest_host,
                     state, host, step, details=None):
    """Store a new migration in state and append its audit entry (step,
    run by host, with details) in the same transaction.

    Returns (the record, its audit entry). MigrationExists when a
    migration has that UUID already.
    """
    now = audit_log.now()
    record = models.Migration(
        uuid=migration_uuid, instance_uuid=instance_uuid,
        source_host=source_host, dest_host=dest_host, state=state,
        created_at=now, updated_at=now)
    with _appending() as session:
        _insert(session, record, exception.MigrationExists(
            'migration %s is already recorded' % migration_uuid))
        entry = _append(session, host, step,
                        migration_uuid=migration_uuid, from_state=None,
                        to_state=state, details=details, created_at=now)
    return record, entry


@_retried
def migration_update_state(migration_uuid, new_state, check, host, step,
                           details=None, values=None):
    """Move a migration to new_state (compare-and-swap) and append its
    audit entry (step, run by host, with details) in the same
    transaction; returns (the state it left, the entry).

    check(old) is called with the state read, before anything is
    written: it raises to refuse the move. The conditional UPDATE
    (``WHERE state = old``) then stores new_state and values (other
    columns: reason, manifest, source_counter) in a transaction that
    holds the audit log's lock (_appending). MigrationStateChanged
    (nothing written) when another transaction moved the migration
    since it was read. A busy database runs it all again, from the
    read. MigrationNotFound.
    """
    with _reader() as session:
        old = _migration_state(session, migration_uuid)
    if old is None:
        raise exception.MigrationNotFound('no migration %s' % migration_uuid)
    check(old)
    now = audit_log.now()
    changes = dict(values or {}, state=new_state, updated_at=now)
    with _appending() as session:
        won = session.query(models.Migration).filter_by(
            uuid=migration_uuid, state=old).update(
            changes, synchronize_session=False)
        if not won:
            raise exception.MigrationStateChanged(
                migration_uuid, old,
                _migration_state(session, migration_uuid) or 'deleted')
        entry = _append(session, host, step,
                        migration_uuid=migration_uuid, from_state=old,
                        to_state=new_state, details=details,
                        created_at=now)
    return old, entry


def _migration_state(session, migration_uuid):
    """The migration's state, None when there is no such migration."""
    row = session.query(models.Migration.state).filter_by(
        uuid=migration_uuid).first()
    return row[0] if row else None


@_retried
def migration_get(migration_uuid):
    with _reader() as session:
        record = session.get(models.Migration, migration_uuid)
    if record is None:
        raise exception.MigrationNotFound('no migration %s' % migration_uuid)
    return record


@_retried
def migration_list(limit=None):
    """Every migration, the most recently changed first (by its newest
    audit entry: timestamps keep whole seconds only)."""
    latest = sa.select(sa.func.max(models.AuditEntry.seq)).where(
        models.AuditEntry.migration_uuid ==
        models.Migration.uuid).scalar_subquery()
    with _reader() as session:
        query = session.query(models.Migration).order_by(
            latest.desc(), models.Migration.updated_at.desc(),
            models.Migration.created_at.desc())
        if limit is not None:
            query = query.limit(limit)
        return query.all()


@_retried
def migrations_in_flight(final_states, instance_uuid=None, connection=None):
    """Migrations in none of final_states (of one instance, if given),
    oldest first (from the database at connection, default
    [korora_database])."""
    with _reader(connection) as session:
        query = session.query(models.Migration)
        if instance_uuid is not None:
            query = query.filter(
                models.Migration.instance_uuid == instance_uuid)
        return query.filter(
            models.Migration.state.notin_(sorted(final_states))).order_by(
            models.Migration.created_at, models.Migration.uuid).all()


@_retried
def migrations_ended_recently(state, dest_host, since, limit):
    """Up to limit migrations to dest_host in state that moved there at
    or after since, the newest first."""
    with _reader() as session:
        return session.query(models.Migration).filter(
            models.Migration.state == state,
            models.Migration.dest_host == dest_host,
            models.Migration.updated_at >= since).order_by(
            models.Migration.updated_at.desc()).limit(limit).all()


@_retried
def migration_highest_counter(source_host, instance_uuid, state):
    """The highest counter value a migration of the instance from
    source_host in state was bound to, or None."""
    with _reader() as session:
        return session.query(sa.func.max(
            models.Migration.source_counter)).filter(
            models.Migration.source_host == source_host,
            models.Migration.instance_uuid == instance_uuid,
            models.Migration.state == state).scalar()


# The audit log (its chain and its verification:
# korora_nova.migration.audit)

@_retried
def audit_entries(migration_uuid=None, after=None, limit=None):
    """Entries in seq order, of one migration or of all; those after
    seq after, if given."""
    with _reader() as session:
        query = session.query(models.AuditEntry)
        if migration_uuid is not None:
            query = query.filter_by(migration_uuid=migration_uuid)
        if after is not None:
            query = query.filter(models.AuditEntry.seq > after)
        query = query.order_by(models.AuditEntry.seq)
        if limit is not None:
            query = query.limit(limit)
        return query.all()


@_retried
def audit_entry_get(seq):
    """Entry seq, or None if there is none."""
    with _reader() as session:
        return session.get(models.AuditEntry, seq)


@_retried
def audit_head():
    """The newest entry, or None when the log is empty."""
    with _reader() as session:
        return _audit_head(session)


@_retried
def audit_anchors():
    with _reader() as session:
        return session.query(models.AuditAnchor).order_by(
            models.AuditAnchor.seq).all()


@_retried
def audit_anchor_get(seq):
    """The anchor of entry seq, or None if there is none."""
    with _reader() as session:
        return session.get(models.AuditAnchor, seq)


@_retried
def audit_anchor_request(host, requester):
    """Append the entry naming who asked korora-api to anchor the log
    with host's TPM; returns its (seq, entry hash): the head to anchor.
    """
    with _appending() as session:
        entry = _append(session, host, audit_log.ANCHOR_REQUEST,
                        details={'requested_by': requester})
        return entry.seq, entry.entry_hash


@_retried
def audit_anchor_create(seq, host, quote_message, quote_signature,
                        pcr_values):
    """Store host's TPM quote anchoring entry seq (pcr_values: JSON);
    returns the anchor. AuditAnchorExists when entry seq is anchored
    already."""
    row = models.AuditAnchor(
        seq=seq, host=host, quote_message=quote_message,
        quote_signature=quote_signature, pcr_values=pcr_values,
        created_at=audit_log.now())
    try:
        with _writer() as session:
            session.add(row)
    except db_exception.DBDuplicateEntry:
        raise exception.AuditAnchorExists(seq=seq)
    return row


@_retried
def audit_unanchored():
    """(the head or None, the seq of the newest anchor or 0, the oldest
    entry after that anchor or None), read in one transaction."""
    with _reader() as session:
        last = _audit_head(session)
        anchored = session.query(models.AuditAnchor).order_by(
            models.AuditAnchor.seq.desc()).first()
        after = anchored.seq if anchored is not None else 0
        if last is None or last.seq <= after:
            return last, after, None
        oldest = session.query(models.AuditEntry).filter(
            models.AuditEntry.seq > after).order_by(
            models.AuditEntry.seq).first()
    return last, after, oldest


# The tables whose rows decide trust (the audit log records their
# digests), each read in the order of one of its unique columns.
_TRUST_TABLES = {'hosts': (models.Host, 'name'),
                 'policies': (models.Policy, 'id'),
                 'host_trust': (models.HostTrust, 'host_name'),
                 'verdicts': (models.Verdict, 'id')}
TRUST_TABLES = tuple(_TRUST_TABLES)


@_retried
def trust_rows(table, after=None, limit=None):
    """Rows of a trust-deciding table (one of TRUST_TABLES) in a fixed
    order: the first ones, or those after the row after (the last one
    of the previous batch)."""
    model, order = _TRUST_TABLES[table]
    column = getattr(model, order)
    with _reader() as session:
        query = session.query(model)
        if after is not None:
            query = query.filter(column > getattr(after, order))
        return query.order_by(column).limit(limit).all()


# korora-api's admin requests (korora_nova.attestation.admin_request)

@_retried
def admin_request_claim(jti, operation, expires_at):
    """Remember an admin request's id (jti) until expires_at, so that no
    verifier worker carries it out twice; NotAuthorized when it was
    claimed already (a replay). Ids of expired requests are forgotten:
    their tokens are refused as expired anyway."""
    with _writer() as session:
        session.query(models.AdminRequest).filter(
            models.AdminRequest.expires_at < utcnow()).delete()
        _insert(session, models.AdminRequest(
            jti=jti, operation=operation, expires_at=expires_at),
            exception.NotAuthorized(
                reason='admin request %s was carried out already '
                       '(replayed)' % jti))


# korora-api's reads: pages of at most limit rows after a marker (the
# key of the previous page's last row, which need not exist any more).

@_retried
def host_page(limit, marker=None):
    """Hosts by name, those after marker (a host name)."""
    with _reader() as session:
        query = session.query(models.Host)
        if marker is not None:
            query = query.filter(models.Host.name > marker)
        return query.order_by(models.Host.name).limit(limit).all()


@_retried
def host_current_verdict(name):
    """(the host's trust row, its verdict row), or None before the first
    verdict."""
    with _reader() as session:
        trust = session.query(models.HostTrust).filter_by(
            host_name=name).first()
        if trust is None:
            return None
        return trust, session.get(models.Verdict, trust.verdict_id)


@_retried
def policy_page(limit, marker=None, name=None):
    """Policy versions by name and version (of one policy, if name),
    those after marker ((name, version))."""
    Policy = models.Policy
    with _reader() as session:
        query = session.query(Policy)
        if name is not None:
            query = query.filter(Policy.name == name)
        if marker is not None:
            after_name, after_version = marker
            query = query.filter(sa.or_(
                Policy.name > after_name,
                sa.and_(Policy.name == after_name,
                        Policy.version > after_version)))
        return query.order_by(Policy.name, Policy.version).limit(
            limit).all()


@_retried
def migration_page(limit, marker=None, instance_uuid=None, host=None,
                   state=None, changed_since=None, changed_before=None):
    """Migrations, the most recently changed first (then by uuid), those
    after marker (a migration uuid); filters: of one instance, from or to
    host, in state, changed at or after changed_since, before
    changed_before. MigrationNotFound for an unknown marker."""
    Migration = models.Migration
    with _reader() as session:
        query = session.query(Migration)
        if marker is not None:
            last = session.get(Migration, marker)
            if last is None:
                raise exception.MigrationNotFound(
                    'marker: no migration %s' % marker)
            query = query.filter(sa.or_(
                Migration.updated_at < last.updated_at,
                sa.and_(Migration.updated_at == last.updated_at,
                        Migration.uuid < last.uuid)))
        if instance_uuid is not None:
            query = query.filter(Migration.instance_uuid == instance_uuid)
        if host is not None:
            query = query.filter(sa.or_(Migration.source_host == host,
                                        Migration.dest_host == host))
        if state is not None:
            query = query.filter(Migration.state == state)
        if changed_since is not None:
            query = query.filter(Migration.updated_at >= changed_since)
        if changed_before is not None:
            query = query.filter(Migration.updated_at < changed_before)
        return query.order_by(Migration.updated_at.desc(),
                              Migration.uuid.desc()).limit(limit).all()


@_retried
def audit_anchor_page(limit, marker=None):
    """TPM anchors of the audit log by seq, those after seq marker."""
    with _reader() as session:
        query = session.query(models.AuditAnchor)
        if marker is not None:
            query = query.filter(models.AuditAnchor.seq > marker)
        return query.order_by(models.AuditAnchor.seq).limit(limit).all()


@_retried
def migration_latest(instance_uuid):
    """The instance's migration that moved last (by its newest audit
    entry: timestamps keep whole seconds only), or None."""
    Migration, Entry = models.Migration, models.AuditEntry
    with _reader() as session:
        return session.query(Migration).join(
            Entry, Entry.migration_uuid == Migration.uuid).filter(
            Migration.instance_uuid == instance_uuid).order_by(
            Entry.seq.desc()).first()
