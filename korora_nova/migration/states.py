"""The states of a live migration and the moves allowed between them.

The forward chain is the order in which the hooks run the Clark-Wilson
transformation procedures of one migration::

    REQUESTED -> PEERS_ATTESTED -> KEY_CERTIFIED -> TRANSFERRING
              -> MEASURED -> VERIFIED -> COMMITTED

============== ========================================================
state          what has been done
============== ========================================================
REQUESTED      the migration is known; nothing is proven yet
PEERS_ATTESTED source and destination proved their integrity to each
               other with their platform TPMs
KEY_CERTIFIED  the destination's per-migration key is certified by its
               attestation key and the vTPM secret is sealed to it
TRANSFERRING   the destination opened the sealed secret; the transfer
               runs: the instance may be on either host
MEASURED       the transfer ended; the source measured what crossed
               (the vTPM state as it was when the transfer ended) into
               the integrity manifest and signed it with its TPM
VERIFIED       on arrival, the destination found the instance exactly
               as measured
COMMITTED      the source's copy is gone and its counter advanced; the
               migration is over
ABORTED        rolled back: the instance stays (or is back) on the
               source, unchanged
QUARANTINED    verification on arrival failed: the instance is held
               paused on the destination for an operator to examine
============== ========================================================

The source measures after the transfer, not before: what counts is the
state that crossed, not a copy taken while the guest still ran.

ABORTED is reachable from every state before COMMITTED (a failed step,
Nova's rollback, an operator). QUARANTINED is reachable from
TRANSFERRING and MEASURED: it is the outcome of the verification on
arrival, the one moment when an instance that may have been changed sits
on the destination. COMMITTED, ABORTED and QUARANTINED are final:
nothing leaves them (releasing a quarantined instance is an operator's
decision about the instance, not a step of the migration).
"""

from korora_nova import exception

REQUESTED = 'REQUESTED'
PEERS_ATTESTED = 'PEERS_ATTESTED'
KEY_CERTIFIED = 'KEY_CERTIFIED'
MEASURED = 'MEASURED'
TRANSFERRING = 'TRANSFERRING'
VERIFIED = 'VERIFIED'
COMMITTED = 'COMMITTED'
ABORTED = 'ABORTED'
QUARANTINED = 'QUARANTINED'

FORWARD = (REQUESTED, PEERS_ATTESTED, KEY_CERTIFIED, TRANSFERRING,
           MEASURED, VERIFIED, COMMITTED)
ALL = FORWARD + (ABORTED, QUARANTINED)
FINAL = frozenset((COMMITTED, ABORTED, QUARANTINED))
INITIAL = REQUESTED

# state -> the states it may move to, in the order an operator reads them.
TRANSITIONS = {
    REQUESTED: (PEERS_ATTESTED, ABORTED),
    PEERS_ATTESTED: (KEY_CERTIFIED, ABORTED),
    KEY_CERTIFIED: (TRANSFERRING, ABORTED),
    TRANSFERRING: (MEASURED, QUARANTINED, ABORTED),
    MEASURED: (VERIFIED, QUARANTINED, ABORTED),
    VERIFIED: (COMMITTED, ABORTED),
    COMMITTED: (),
    ABORTED: (),
    QUARANTINED: (),
}

# The transformation procedure (audit log "step") that enters a state.
STEPS = {
    REQUESTED: 'request',
    PEERS_ATTESTED: 'attest-peers',
    KEY_CERTIFIED: 'certify-key',
    TRANSFERRING: 'transfer',
    MEASURED: 'measure',
    VERIFIED: 'verify-arrival',
    COMMITTED: 'commit',
    ABORTED: 'abort',
    QUARANTINED: 'quarantine',
}

# What a restarted service does with a migration it finds in flight
# (korora_nova.hooks.recovery).
ROLL_BACK = 'roll back'     # nothing left the source: abort
FINISH = 'finish'           # where the instance runs decides: still on
#                             the source, abort; on the destination,
#                             measure, verify and commit
VERIFY = 'verify'           # the destination verifies on arrival (then
#                             VERIFIED or QUARANTINED), the source commits
COMMIT = 'commit'           # arrived intact: finish the clean-up, commit
RESUME = {
    REQUESTED: ROLL_BACK,
    PEERS_ATTESTED: ROLL_BACK,
    KEY_CERTIFIED: ROLL_BACK,
    TRANSFERRING: FINISH,
    MEASURED: VERIFY,
    VERIFIED: COMMIT,
}


class IllegalTransition(exception.KororaError):
    """A move the state machine does not allow; nothing was changed."""

    def __init__(self, migration_uuid, old, new, detail=None):
        self.migration_uuid = migration_uuid
        self.old = old
        self.new = new
        message = 'migration %s: %s -> %s is not allowed' % (
            migration_uuid, old, new)
        if detail is None:
            detail = _allowed_from(old)
        if detail:
            message += ' (%s)' % detail
        super().__init__(message)


class ConcurrentTransition(IllegalTransition):
    """Another service moved the migration first; nothing was changed."""

    def __init__(self, migration_uuid, old, new, now):
        self.now = now
        super().__init__(
            migration_uuid, old, new,
            'it is %s now: another service moved it first' % now)


# Raised by the database layer (korora_nova.db.api), named here too.
MigrationNotFound = exception.MigrationNotFound
MigrationExists = exception.MigrationExists


def _allowed_from(old):
    if old not in TRANSITIONS:
        return '%s is not a migration state' % old
    if old in FINAL:
        return '%s is final' % old
    return 'from %s only %s' % (old, ' or '.join(TRANSITIONS[old]))


def is_final(state):
    return state in FINAL


def allowed(old, new):
    return new in TRANSITIONS.get(old, ())


def check(migration_uuid, old, new):
    """Raise IllegalTransition unless old -> new is allowed."""
    if new not in TRANSITIONS:
        raise IllegalTransition(migration_uuid, old, new,
                                '%s is not a migration state' % new)
    if not allowed(old, new):
        raise IllegalTransition(migration_uuid, old, new)
