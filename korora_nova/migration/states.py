"""The states of a live migration and the moves allowed between them.

The forward chain is the order in which the hooks run the Clark-Wilson
transformation procedures of one migration::

    REQUESTED -> PEERS_ATTESTED -> KEY_CERTIFIED -> MEASURED
              -> TRANSFERRING -> VERIFIED -> COMMITTED

============== ========================================================
state          what has been done
============== ========================================================
REQUESTED      the migration is known; nothing is proven yet
PEERS_ATTESTED source and destination proved their integrity to each
               other with their platform TPMs
KEY_CERTIFIED  the destination's per-migration key is certified by its
               attestation key (the vTPM state is sealed to it)
MEASURED       the instance's vTPM state and the data that travels with
               it are measured into the integrity manifest
TRANSFERRING   the transfer has started: the instance may be on either
               host
VERIFIED       on arrival, the destination found the instance exactly
               as measured
COMMITTED      the source's copy is gone; the migration is over
ABORTED        rolled back: the instance stays (or is back) on the
               source, unchanged
QUARANTINED    verification on arrival failed: the instance is held on
               the destination, never run, for an operator to examine
============== ========================================================

ABORTED is reachable from every state before COMMITTED (a failed step,
Nova's rollback, an operator). QUARANTINED is reachable only from
TRANSFERRING: it is the outcome of the verification on arrival, the one
moment when an instance that may have been changed sits on the
destination. Before the transfer nothing has left the source, so a
failure is a plain abort; after VERIFIED the instance arrived intact, so a
later failure is an abort too. COMMITTED, ABORTED and QUARANTINED are
final: nothing leaves them (releasing a quarantined instance is an
operator's decision about the instance, not a step of the migration).
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

FORWARD = (REQUESTED, PEERS_ATTESTED, KEY_CERTIFIED, MEASURED,
           TRANSFERRING, VERIFIED, COMMITTED)
ALL = FORWARD + (ABORTED, QUARANTINED)
FINAL = frozenset((COMMITTED, ABORTED, QUARANTINED))
INITIAL = REQUESTED

# state -> the states it may move to, in the order an operator reads them.
TRANSITIONS = {
    REQUESTED: (PEERS_ATTESTED, ABORTED),
    PEERS_ATTESTED: (KEY_CERTIFIED, ABORTED),
    KEY_CERTIFIED: (MEASURED, ABORTED),
    MEASURED: (TRANSFERRING, ABORTED),
    TRANSFERRING: (VERIFIED, QUARANTINED, ABORTED),
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
    MEASURED: 'measure',
    TRANSFERRING: 'transfer',
    VERIFIED: 'verify-arrival',
    COMMITTED: 'commit',
    ABORTED: 'abort',
    QUARANTINED: 'quarantine',
}

# What a restarted service does with a migration it finds in flight.
ROLL_BACK = 'roll back'     # nothing left the source: abort, Nova retries
VERIFY = 'verify'           # on the destination: verify on arrival (then
#                             VERIFIED or QUARANTINED); still on the source:
#                             abort
COMMIT = 'commit'           # arrived intact: finish the clean-up, commit
RESUME = {
    REQUESTED: ROLL_BACK,
    PEERS_ATTESTED: ROLL_BACK,
    KEY_CERTIFIED: ROLL_BACK,
    MEASURED: ROLL_BACK,
    TRANSFERRING: VERIFY,
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


class MigrationNotFound(exception.KororaError):
    """No migration record has that UUID."""


class MigrationExists(exception.KororaError):
    """A migration record with that UUID exists already."""


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
