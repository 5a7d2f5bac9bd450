"""The audit log's entries: how each is hashed and appended.

Every move of a migration and every write of a row that decides trust
appends one entry in the same transaction as the write it records, so
both commit or neither does. Each entry's hash covers its fields and
the previous entry's hash: the log is a chain that korora_nova.migration.
audit verifies (and a host TPM anchors).

Here, in the database layer, because the database writes them: this
module builds and hashes entries, korora_nova.db.api stores them (all
SQL is there); entries keep whole seconds (every backend stores the
same timestamp).
"""

import datetime
import hashlib
import string

from korora_nova.attestation.canonical import canonical
from korora_nova.db import models
from korora_nova import exception

GENESIS = '0' * 64
MAX_DETAILS = 16 * 1024
_HEX = frozenset(string.hexdigits.lower())


# Steps of the entries that record what decides trust.
HOST_ENROLL = 'host-enroll'
HOST_REMOVE = 'host-remove'
POLICY_ASSIGN = 'policy-assign'
POLICY_IMPORT = 'policy-import'
POLICY_ACTIVATE = 'policy-activate'
POLICY_DEACTIVATE = 'policy-deactivate'
VERDICT = 'verdict'
TRUST_STEPS = frozenset([HOST_ENROLL, HOST_REMOVE, POLICY_ASSIGN,
                         POLICY_IMPORT, POLICY_ACTIVATE, POLICY_DEACTIVATE,
                         VERDICT])
# An operator asked through korora-api to anchor the log (details name
# who): the anchor that follows signs this entry.
ANCHOR_REQUEST = 'anchor-request'
# Who writes policy entries (a policy belongs to no host).
VERIFIER = 'verifier'


def digest(data):
    """How evidence is named in an entry's details: "sha256:<hex>"."""
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def _digested(value):
    """details with every bytes value replaced by its digest."""
    if isinstance(value, (bytes, bytearray)):
        return digest(bytes(value))
    if isinstance(value, dict):
        return {str(key): _digested(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_digested(item) for item in value]
    return value


def canonical_details(details):
    """details (a dict) as the canonical JSON an entry stores; bytes
    values become their SHA-256 digest, so evidence is named, not
    copied."""
    if details is None:
        details = {}
    if not isinstance(details, dict):
        raise exception.AuditError('audit details must be a mapping, not %s'
                                   % type(details).__name__)
    try:
        text = canonical(_digested(details))
    except (TypeError, ValueError) as error:
        raise exception.AuditError('audit details are not JSON: %s' % error)
    if len(text) > MAX_DETAILS:
        raise exception.AuditError('audit details are %d bytes; at most %d'
                                   % (len(text), MAX_DETAILS))
    return text


def row_key(row):
    """How entries name a trust-deciding row: canonical JSON of its
    table and primary key, e.g. '["policies","fleet",3]'."""
    return canonical(list(row.audit_key()))


def row_digest(row):
    """The digest of what in the row decides trust."""
    return digest(canonical(row.audit_content()).encode('ascii'))


def trust_details(rows=(), removed=(), details=None):
    """The details of a trust-deciding change's entry: details, and the
    rows written (their digests) and row keys removed."""
    recorded = {row_key(row): row_digest(row) for row in rows}
    recorded.update((canonical(list(key)), None) for key in removed)
    entry_details = dict(details or {})
    entry_details['rows'] = recorded
    return entry_details


def timestamp(value):
    return value.isoformat(timespec='seconds')


def now():
    """The current UTC time to the second (see the module's docstring)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(
        tzinfo=None, microsecond=0)


def compute_hash(prev_hash, seq, migration_uuid, host, step, from_state,
                 to_state, details, created_at):
    """The entry hash of an entry's fields (details: the stored text)."""
    if not _is_hash(prev_hash):
        raise ValueError('previous hash %r is not 64 hex digits'
                         % (prev_hash,))
    fields = {'seq': seq, 'migration_uuid': migration_uuid, 'host': host,
              'step': step, 'from_state': from_state,
              'to_state': to_state, 'details': details,
              'created_at': timestamp(created_at)}
    return hashlib.sha256(bytes.fromhex(prev_hash) +
                          canonical(fields).encode('ascii')).hexdigest()


def hash_of(entry):
    """The hash an AuditEntry row's content gives (None if unusable)."""
    try:
        return compute_hash(entry.prev_hash, entry.seq,
                            entry.migration_uuid, entry.host, entry.step,
                            entry.from_state, entry.to_state, entry.details,
                            entry.created_at)
    except (ValueError, TypeError, AttributeError):
        return None


def _is_hash(value):
    return isinstance(value, str) and len(value) == 64 and (
        set(value) <= _HEX)


def new_entry(last, text, host, step, migration_uuid=None, from_state=None,
              to_state=None, created_at=None):
    """The entry that follows last (the head; None when the log is
    empty), not stored yet; text: its details (canonical_details).

    The entry takes the head's seq + 1. When another transaction appends
    at the same time, one of the two fails with DBDuplicateEntry on seq
    when it writes: the caller retries its whole transaction.
    """
    created_at = (created_at or now()).replace(microsecond=0)
    seq = last.seq + 1 if last is not None else 1
    prev_hash = last.entry_hash if last is not None else GENESIS
    try:
        entry_hash = compute_hash(prev_hash, seq, migration_uuid, host,
                                  step, from_state, to_state, text,
                                  created_at)
    except ValueError:
        raise exception.AuditError(
            'the audit log\'s head (seq %d) has a malformed '
            'hash: it was tampered with; run "korora-manage '
            'audit verify"' % last.seq)
    return models.AuditEntry(
        seq=seq, migration_uuid=migration_uuid, host=host, step=step,
        from_state=from_state, to_state=to_state, details=text,
        created_at=created_at, prev_hash=prev_hash, entry_hash=entry_hash)
