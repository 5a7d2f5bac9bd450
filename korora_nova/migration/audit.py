"""The append-only, hash-chained audit log and its TPM anchors.

Every entry carries the hash of the entry before it (``prev_hash``; the
first one 64 zeros) and its own hash::

    entry_hash = SHA-256(prev_hash (32 bytes) || canonical JSON of
                         {seq, migration_uuid, host, step, from_state,
                          to_state, details, created_at})

so changing, removing or inserting an entry breaks the chain from that
point on. Whoever can write the database can also recompute every hash
after a change, or cut off the newest entries: an anchor is what catches
that. ``anchor`` asks a host's vTPM manager for a TPM quote whose nonce
(extraData) is the head's entry hash and keeps the quote; ``verify``
checks every anchor's quote against the host's enrolled attestation key
and the entry hash it names. A rewritten chain then contradicts the hash
the TPM signed, and a cut-off chain ends before an anchored entry.

What the anchors cannot see: entries appended after the last anchor
(reported as not yet anchored), and a rollback of both tables, anchors
included, to an earlier state. For the latter, compare with a head
recorded outside the database (``korora-manage audit anchor`` prints it
and the service log keeps it): ``verify(expected_head=(seq, hash))``.

What decides trust is in the chain too: every time the verifier writes
a host, a policy version, a verdict or a host's current trust, the same
transaction appends an entry (migration_uuid None; step 'host-enroll',
'host-remove', 'policy-assign', 'policy-import', 'policy-activate',
'policy-deactivate' or 'verdict') whose details map each row it wrote
to the digest of the row's trust-deciding content (``rows``; None for a
row it removed). ``verify`` compares every such row with the latest
digest the chain holds for it: a row inserted, changed or deleted behind
the verifier's back is reported by name. It also reports every policy
version no trusted operator key signed.

Timestamps are kept to the second, so that the hashed value is the one
every database backend gives back.

The rows come from korora_nova.db.api (all SQL is there); how an entry
is hashed is korora_nova.db.audit_log's, which builds the entries.
"""

import dataclasses
import hmac
import json

from oslo_log import log as logging

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values as pcr_module
from korora_nova.attestation import purpose
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova.db import audit_log
from korora_nova import exception
from korora_nova.attestation.canonical import canonical

CONF = conf.CONF
LOG = logging.getLogger(__name__)

_BATCH = 1000

# Problem codes: stable words a program can match.
MISSING = 'missing'
BROKEN_LINK = 'broken-link'
HASH_MISMATCH = 'hash-mismatch'
MALFORMED = 'malformed'
ANCHOR_INVALID = 'anchor-invalid'
ANCHOR_MISMATCH = 'anchor-mismatch'
TRUNCATED = 'truncated'
HEAD_MISMATCH = 'head-mismatch'
UNAUDITED = 'unaudited-row'
ROW_CHANGED = 'row-changed'
ROW_DELETED = 'row-deleted'
UNSIGNED = 'unsigned-policy'

# verify reads rows again when they raced with appends this many times.
ROW_ROUNDS = 3


def entries(migration_uuid=None, limit=None):
    """Entries in seq order, of one migration or of all."""
    return db.audit_entries(migration_uuid, limit=limit)


def anchors():
    return db.audit_anchors()


# Verification

@dataclasses.dataclass(frozen=True)
class Problem:
    """seq: the entry concerned (for a row: the entry that last recorded
    it, 0 if none); row: the trust-deciding row concerned, if any."""

    seq: int
    code: str
    message: str
    row: str = None

    def __str__(self):
        if self.row is not None:
            return '%s: %s' % (self.row, self.message)
        return 'seq %d: %s' % (self.seq, self.message)

    def sort_key(self):
        return (self.row is not None, self.seq, self.row or '')


@dataclasses.dataclass
class Report:
    """What verify found. ok is False when any problem was found;
    warnings (entries not yet anchored) do not make it fail."""

    entries: int = 0
    first_seq: int = None
    last_seq: int = 0
    head_hash: str = None
    anchors: int = 0
    last_anchor_seq: int = None
    last_anchor_host: str = None
    unanchored: int = 0
    problems: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    rows: int = 0

    @property
    def ok(self):
        return not self.problems

    @property
    def first_problem(self):
        return self.problems[0] if self.problems else None

    def summary(self):
        """Lines for an operator."""
        if self.entries:
            lines = ['audit log: %d entries (seq %d..%d), head %s'
                     % (self.entries, self.first_seq, self.last_seq,
                        self.head_hash)]
        else:
            lines = ['audit log: no entries']
        if self.anchors:
            lines.append('anchors: %d, the last at seq %d by %s\'s TPM'
                         % (self.anchors, self.last_anchor_seq,
                            self.last_anchor_host))
        else:
            lines.append('anchors: none')
        lines.extend('warning: %s' % warning for warning in self.warnings)
        if self.ok:
            lines.append('intact')
        else:
            first = self.first_problem
            lines.append('TAMPERED: %d problem%s, the first %s'
                         % (len(self.problems),
                            '' if len(self.problems) == 1 else 's',
                            'at seq %d' % first.seq if first.row is None
                            else 'in %s' % first.row))
            lines.extend('  %s' % problem for problem in self.problems)
        return lines


def _range(first, last):
    return 'entry %d is' % first if first == last else (
        'entries %d..%d are' % (first, last))


class _AKs:
    """Enrolled AKs by host name, loaded once."""

    def __init__(self):
        self.keys = {}

    def get(self, name):
        if name not in self.keys:
            try:
                host = db.host_get(name)
            except exception.HostNotFound:
                host = None
            key = None
            if host is not None:
                try:
                    key = appraisal.load_public_key(host.ak_public)
                except exception.EvidenceError:
                    key = None
            self.keys[name] = (host is not None, key)
        return self.keys[name]


def _batches(after=None):
    """Every entry in seq order, read _BATCH at a time, each batch in a
    short transaction of its own: a long walk never holds SQLite's lock
    against the services appending meanwhile (the log only grows at its
    end, so the batches join up)."""
    while True:
        batch = db.audit_entries(after=after, limit=_BATCH)
        yield from batch
        if len(batch) < _BATCH:
            return
        after = batch[-1].seq


class _Walk:
    """Where a walk of the chain stands, so that it can go on later."""

    def __init__(self, wanted):
        self.wanted = wanted
        self.found = {}
        self.covered = {}    # row key -> (digest or None, seq)
        self.after = None


def _cover(walk, entry):
    """Note the rows a trust entry recorded (the latest entry wins)."""
    if (entry.migration_uuid is not None or
            entry.step not in audit_log.TRUST_STEPS):
        return
    try:
        rows = json.loads(entry.details).get('rows')
    except (ValueError, TypeError, AttributeError, RecursionError):
        return
    if not isinstance(rows, dict):
        return
    for key, value in rows.items():
        if value is None or isinstance(value, str):
            walk.covered[key] = (value, entry.seq)


def _walk(report, wanted, walk=None):
    """Check every entry in seq order (after those walk saw already);
    return the walk: found holds {seq: stored hash} of the wanted seqs,
    covered the rows trust entries recorded."""
    walk = walk or _Walk(wanted)
    found = walk.found
    expected_seq = report.last_seq + 1
    previous_hash = report.head_hash or audit_log.GENESIS
    for entry in _batches(walk.after):
        if report.first_seq is None:
            report.first_seq = entry.seq
        report.entries += 1
        after_gap = entry.seq != expected_seq
        if after_gap:
            report.problems.append(Problem(
                expected_seq, MISSING,
                '%s missing: entries were deleted'
                % _range(expected_seq, entry.seq - 1)))
        elif entry.prev_hash != previous_hash:
            report.problems.append(Problem(
                entry.seq, BROKEN_LINK,
                'entry %d does not follow entry %d: its previous hash %s '
                'is not %s (an entry was inserted, removed or rewritten)'
                % (entry.seq, entry.seq - 1, entry.prev_hash,
                   previous_hash)))
        actual = audit_log.hash_of(entry)
        if actual is None:
            report.problems.append(Problem(
                entry.seq, MALFORMED,
                'entry %d is malformed: its previous hash is not 64 hex '
                'digits' % entry.seq))
        elif actual != entry.entry_hash:
            report.problems.append(Problem(
                entry.seq, HASH_MISMATCH,
                'entry %d was changed: its content hashes to %s, not to '
                'the stored %s' % (entry.seq, actual, entry.entry_hash)))
        if entry.seq in walk.wanted:
            found[entry.seq] = entry.entry_hash
        _cover(walk, entry)
        previous_hash = entry.entry_hash
        expected_seq = entry.seq + 1
        report.last_seq = entry.seq
        report.head_hash = entry.entry_hash
        walk.after = entry.seq
    return walk


def _check_anchor(report, aks, anchor, hashes):
    """Is the anchor a genuine quote of its host's TPM over the hash of
    its entry, for the anchor purpose? Returns True when it proves its
    entry."""
    enrolled, key = aks.get(anchor.host)
    if not enrolled or key is None:
        report.problems.append(Problem(
            anchor.seq, ANCHOR_INVALID,
            'anchor of entry %d names host %s, which is not enrolled (or '
            'has no usable AK): its quote cannot be checked'
            % (anchor.seq, anchor.host)))
        return False
    try:
        attestation = evidence.parse_attestation(anchor.quote_message)
        values = pcr_module.from_json(json.loads(anchor.pcr_values))
    except (exception.EvidenceError, ValueError, TypeError) as error:
        report.problems.append(Problem(
            anchor.seq, ANCHOR_INVALID,
            'anchor of entry %d by %s is malformed: %s'
            % (anchor.seq, anchor.host, error)))
        return False
    # First: did that host's TPM sign this quote at all?
    verdict = appraisal.appraise_quote(
        evidence.QuoteEvidence(anchor.quote_message, anchor.quote_signature,
                               values), key, attestation.extra_data,
        None, host=anchor.host)
    if not verdict.evidence_valid:
        report.problems.append(Problem(
            anchor.seq, ANCHOR_INVALID,
            'anchor of entry %d is not a quote of %s\'s TPM: %s'
            % (anchor.seq, anchor.host, '; '.join(
                r.message for r in verdict.reasons
                if r.code != 'no-policy'))))
        return False
    if anchor.seq > report.last_seq:
        report.problems.append(Problem(
            anchor.seq, TRUNCATED,
            'the log ends at seq %d but %s\'s TPM anchored entry %d: %s '
            'missing (the log was truncated)'
            % (report.last_seq, anchor.host, anchor.seq,
               _range(report.last_seq + 1, anchor.seq))))
        return False
    stored = hashes.get(anchor.seq)
    if stored is None:
        return False              # inside a gap, reported as missing
    if not audit_log._is_hash(stored) or not hmac.compare_digest(
            attestation.extra_data, anchored_data(stored)):
        report.problems.append(Problem(
            anchor.seq, ANCHOR_MISMATCH,
            '%s\'s TPM signed entry hash %s for entry %d, but the log now '
            'has %s: the log up to seq %d was rewritten (or the quote was '
            'not made to anchor the log)'
            % (anchor.host, attestation.extra_data.hex(), anchor.seq,
               stored, anchor.seq)))
        return False
    return True


def anchored_data(entry_hash):
    """What a TPM signs to anchor an entry hash: the anchor purpose's
    qualifying data, never the hash itself."""
    return purpose.qualifying_data(purpose.ANCHOR, bytes.fromhex(entry_hash))


def verify(expected_head=None, rows=True):
    """Walk the whole chain and every anchor; returns a Report.

    expected_head: (seq, entry hash) known from outside the database (an
    earlier anchor's output); the log must still hold that entry.
    rows: also check every trust-deciding row against the chain.
    """
    report = Report()
    # Anchors first: one made while the entries are read names an entry
    # the walk may not reach, and would look like a truncation.
    anchor_rows = anchors()
    wanted = {row.seq for row in anchor_rows}
    if expected_head is not None:
        wanted.add(expected_head[0])
    walk = _walk(report, wanted)
    hashes = walk.found
    aks = _AKs()
    anchored_upto = None
    for row in anchor_rows:
        report.anchors += 1
        report.last_anchor_seq = row.seq
        report.last_anchor_host = row.host
        if _check_anchor(report, aks, row, hashes):
            anchored_upto = row.seq
    if expected_head is not None:
        _check_head(report, hashes, *expected_head)
    if report.entries:
        first = (anchored_upto or 0) + 1
        report.unanchored = max(0, report.last_seq - first + 1)
        if anchored_upto is None:
            report.warnings.append(
                'no entry is anchored by a TPM yet: %d entries could be '
                'rewritten unnoticed' % report.entries)
        elif report.unanchored:
            report.warnings.append(
                '%s not yet anchored by a TPM'
                % _range(first, report.last_seq))
    if rows:
        _check_rows(report, walk)
    report.problems.sort(key=Problem.sort_key)
    return report


def _check_head(report, hashes, seq, entry_hash):
    if seq > report.last_seq:
        report.problems.append(Problem(
            seq, TRUNCATED,
            'the log ends at seq %d but the expected head is entry %d: the '
            'log was truncated or rolled back' % (report.last_seq, seq)))
    elif seq in hashes and hashes[seq] != entry_hash.lower():
        report.problems.append(Problem(
            seq, HEAD_MISMATCH,
            'entry %d has hash %s, not the expected %s: the log was '
            'rewritten' % (seq, hashes[seq], entry_hash)))


# Trust-deciding rows

def _rows(table):
    """Every row of table (one of db.TRUST_TABLES), _BATCH at a time,
    each batch read in a short transaction (as _batches)."""
    after = None
    while True:
        batch = db.trust_rows(table, after=after, limit=_BATCH)
        yield from batch
        if len(batch) < _BATCH:
            return
        after = batch[-1]


def describe(row):
    """A row as an operator finds it with korora-manage."""
    key = row.audit_key()
    if key[0] == 'policies':
        return 'policies row %s version %d (%s)' % (
            row.name, row.version, 'active' if row.active else 'inactive')
    if key[0] == 'verdicts':
        return 'verdicts row %d (host %s)' % (row.id, row.host_name)
    return '%s row %s' % key


def _describe_key(key):
    try:
        parts = json.loads(key)
        table = parts[0]
    except (ValueError, TypeError, IndexError, KeyError):
        return 'row %s' % key
    if table == 'policies' and len(parts) == 3:
        return 'policies row %s version %s' % (parts[1], parts[2])
    return '%s row %s' % (table, ' '.join(str(part) for part in parts[1:]))


def _row_problem(row, recorded):
    """The problem of one row against what the chain recorded, or None.
    """
    actual = audit_log.row_digest(row)
    where = describe(row)
    if recorded is None or recorded[0] is None:
        return Problem(
            recorded[1] if recorded else 0, UNAUDITED,
            'not in the audit log: it was written behind the verifier\'s '
            'back (the verifier records every row it writes)', where)
    if actual != recorded[0]:
        return Problem(
            recorded[1], ROW_CHANGED,
            'changed behind the verifier\'s back: its content hashes to '
            '%s, the audit log recorded %s at seq %d'
            % (actual, recorded[0], recorded[1]), where)
    return None


def _signature_problem(row, keys):
    from korora_nova.attestation import policy as policy_module
    try:
        policy_module.verified(row.name, row.version, row.document,
                               row.signature, keys)
    except exception.PolicyError as error:
        return Problem(0, UNSIGNED, '%s; appraisal ignores it' % error,
                       describe(row))
    return None


def _trusted_keys(report):
    from korora_nova.attestation import policy as policy_module
    try:
        return policy_module.trusted_keys(CONF.korora.policy_signing_keys)
    except exception.KororaError as error:
        report.problems.append(Problem(
            0, UNSIGNED, 'cannot check policy signatures: %s' % error,
            '[korora] policy_signing_keys'))
        return None


def _scan_rows(walk):
    """(row problems, rows seen) of every trust-deciding row."""
    problems = {}
    seen = set()
    for table in db.TRUST_TABLES:
        for row in _rows(table):
            key = audit_log.row_key(row)
            seen.add(key)
            problem = _row_problem(row, walk.covered.get(key))
            if problem is not None:
                problems[key] = (problem, row)
    for key, (value, seq) in walk.covered.items():
        if value is not None and key not in seen:
            problems[key] = (Problem(
                seq, ROW_DELETED,
                'deleted behind the verifier\'s back: the audit log '
                'recorded it at seq %d' % seq, _describe_key(key)), None)
    return problems, seen


def _check_rows(report, walk):
    """Report every trust-deciding row the chain does not cover.

    A row the verifier wrote while the chain was read can look changed:
    its entry came after the walk. Such rows are checked again after
    the walk took in the new entries; only rows that still disagree are
    reported.
    """
    keys = _trusted_keys(report)
    problems, seen = _scan_rows(walk)
    for _ in range(ROW_ROUNDS):
        if not problems:
            break
        last = report.last_seq
        _walk(report, walk.wanted, walk)
        if report.last_seq == last:
            break
        problems, seen = _scan_rows(walk)
    report.rows = len(seen)
    report.problems.extend(problem for problem, _ in problems.values())
    if keys is not None:
        for row in _rows('policies'):
            problem = _signature_problem(row, keys)
            if problem is not None:
                report.problems.append(problem)


# Anchoring

def anchor(manager_api, host_name, requester=None):
    """Have host_name's TPM sign the current head; returns the anchor.

    The log is verified first: a tampered log is never anchored. If the
    head is anchored already, that anchor is returned. requester: who
    asked through korora-api; an entry naming them is appended to the
    verified log first, and that entry is what the TPM signs.
    """
    host = db.host_get(host_name)
    # The chain, not the rows: a row changed behind the verifier's back
    # is reported by verify, and anchoring the chain keeps it provable.
    report = verify(rows=False)
    if not report.ok:
        raise exception.AuditError(
            'the audit log fails verification, not anchoring it: %s'
            % report.first_problem)
    if not report.entries:
        raise exception.AuditError(
            'the audit log is empty: there is nothing to anchor')
    seq, head_hash = report.last_seq, report.head_hash
    if requester:
        seq, head_hash = db.audit_anchor_request(host_name, requester)
    existing = db.audit_anchor_get(seq)
    if existing is not None:
        return existing
    quote = manager_api.attest(host_name, bytes.fromhex(head_hash),
                               purpose_label=purpose.ANCHOR)
    verdict = appraisal.appraise_quote(
        quote, appraisal.load_public_key(host.ak_public),
        anchored_data(head_hash), None, host=host_name)
    if not verdict.evidence_valid:
        raise exception.EvidenceError(
            'cannot anchor the audit log with %s\'s TPM: %s'
            % (host_name, verdict.summary()))
    try:
        row = db.audit_anchor_create(
            seq, host_name, quote.message, quote.signature,
            canonical(pcr_module.to_json(quote.pcr_values)))
    except exception.AuditAnchorExists:
        # Anchored by someone else meanwhile.
        return db.audit_anchor_get(seq)
    LOG.info('audit log anchored by %s\'s TPM: seq %d, entry hash %s',
             host_name, seq, head_hash)
    return row


def anchor_due(manager_api, host_name, max_entries, interval):
    """Anchor the head with host_name's TPM if max_entries entries were
    appended since the last anchor, or the oldest of them is interval
    seconds old; returns the new anchor, or None when none was due."""
    last, after, oldest = db.audit_unanchored()
    if last is None or last.seq <= after:
        return None
    pending = last.seq - after
    age = (audit_log.now() - oldest.created_at).total_seconds()
    if pending < max_entries and age < interval:
        return None
    LOG.debug('anchoring the audit log: %d entries unanchored, the oldest '
              '%d s old', pending, age)
    return anchor(manager_api, host_name)


def head_entry():
    return db.audit_head()


def entry_hash(seq):
    """The stored entry hash of entry seq (None if there is none)."""
    entry = db.audit_entry_get(seq)
    return entry.entry_hash if entry is not None else None
