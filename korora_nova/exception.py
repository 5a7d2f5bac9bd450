"""The exceptions korora-nova raises.

Every error that can reach a caller is a KororaError, so callers (the
CLI, the verifier, Nova's compute service) need to catch only one family
and can show its message to an operator as it is.

Every class is here, each with a msg_fmt naming its keyword arguments.
This module imports nothing of korora_nova: every package may import it.
"""


class KororaError(Exception):
    """Base class: the message is written for an operator.

    Raise with the message, or with the keyword arguments of the class's
    msg_fmt (as Nova's exceptions take theirs).
    """

    msg_fmt = '%(reason)s'

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                message = self.msg_fmt
        super().__init__(message)


# korora-api's clients (korora_nova/client).

class APIRequestFailed(KororaError):
    """korora-api refused a request or could not be reached; status is
    None when no answer came."""
    msg_fmt = 'korora-api: %(reason)s'

    def __init__(self, message=None, status=None, **kwargs):
        self.status = status
        super().__init__(message, **kwargs)


# Configuration and the command line.

class ConfigurationError(KororaError):
    """An option or a file it names is missing or unusable."""
    msg_fmt = 'configuration error: %(reason)s'


class SigningKeyError(ConfigurationError):
    """An operator's policy signing key (private or public) cannot be
    read or is not an EC P-256 key."""
    msg_fmt = 'the policy signing key %(path)s: %(reason)s'


class HookSocketError(ConfigurationError):
    """[korora] libvirt_hook_socket cannot be served."""
    msg_fmt = '[korora] libvirt_hook_socket %(path)s: %(reason)s'


class UsageError(KororaError):
    """A command line the command cannot act on."""
    msg_fmt = 'cannot act on this command line: %(reason)s'


class HookInstallError(KororaError):
    """The hook cannot be installed, removed or inspected there."""
    msg_fmt = '%(path)s: %(reason)s'


# TPMs.

class TPMError(KororaError):
    """The TPM refused a command or could not be reached."""
    msg_fmt = 'TPM error: %(reason)s'


class TPMConnectionError(TPMError):
    """The TPM could not be reached; the next command reopens the link."""
    msg_fmt = 'the TPM at %(tcti)s is unreachable: %(reason)s'


class TPMBusy(TPMError):
    """Another operation holds the TPM; a background job asked not to
    wait for it (the PCR watch, housekeeping)."""
    msg_fmt = 'the TPM at %(tcti)s is busy'


class MeasurementFailed(TPMError):
    """A vTPM manager could not measure an item (item names it)."""
    msg_fmt = '%(item)s could not be measured: %(reason)s'

    def __init__(self, message, item):
        super().__init__(message)
        self.item = item


class SoftwareTPMError(KororaError):
    """A software TPM (swtpm) could not be set up or started."""
    msg_fmt = 'swtpm: %(reason)s'


class XenVTPMMgrError(KororaError):
    """Which Xen vTPM manager domain runs cannot be told."""
    msg_fmt = 'the running Xen vTPM manager cannot be told: %(reason)s'


# Evidence, endorsement, enrollment and policies.

class EvidenceError(KororaError):
    """Evidence is malformed, oversized or of an unsupported kind."""
    msg_fmt = 'evidence refused: %(reason)s'


class SignedResultError(EvidenceError):
    """A verifier answer is unsigned, forged, expired or not for this
    request: it is not believed."""
    msg_fmt = 'the verifier\'s answer is not believed: %(reason)s'


class EndorsementError(KororaError):
    """An endorsement key or its certificate cannot be trusted."""
    msg_fmt = 'the endorsement key is not trusted: %(reason)s'


class EnrollmentError(KororaError):
    """A host could not be enrolled: its identity was not proven."""
    msg_fmt = 'host %(host)s cannot be enrolled: %(reason)s'


class PolicyError(KororaError):
    """A reference policy file is malformed."""
    msg_fmt = 'policy refused: %(reason)s'


class PolicySignatureError(PolicyError):
    """A policy version is not signed by an operator key the verifier
    trusts, or its signed content differs from the stored one."""
    msg_fmt = 'policy %(name)s v%(version)s is not trusted: %(reason)s'


# The verifier's database and its records.

class DatabaseError(KororaError):
    """The verifier database cannot be reached or used."""
    msg_fmt = 'the database cannot be used: %(reason)s'


class AuditError(KororaError):
    """The audit log cannot be written or anchored."""
    msg_fmt = 'audit log: %(reason)s'


class HostNotFound(KororaError):
    """No enrolled host has that name."""
    msg_fmt = 'host %(host)s is not enrolled'


class HostExists(KororaError):
    """A host of that name is already enrolled."""
    msg_fmt = ('host %(host)s is already enrolled; remove it first to '
               'enroll it again')


class PolicyNotFound(KororaError):
    """No reference policy has that name (and version)."""
    msg_fmt = 'no policy %(name)s'


class PolicyExists(KororaError):
    """That version of the policy was imported already."""
    msg_fmt = 'policy %(name)s v%(version)s already exists'


class MigrationNotFound(KororaError):
    """No migration record has that UUID."""
    msg_fmt = 'no migration %(migration_uuid)s'


class MigrationExists(KororaError):
    """A migration record with that UUID exists already."""
    msg_fmt = 'migration %(migration_uuid)s is already recorded'


class MigrationStateChanged(KororaError):
    """A migration is no longer in the state its move was decided from:
    another service moved it first; nothing was changed."""
    msg_fmt = ('migration %(migration_uuid)s: not %(expected)s but '
               '%(actual)s now')

    def __init__(self, migration_uuid, expected, actual):
        self.migration_uuid = migration_uuid
        self.expected = expected
        self.actual = actual
        super().__init__(migration_uuid=migration_uuid, expected=expected,
                         actual=actual)


class AuditAnchorExists(KororaError):
    """That audit entry is anchored already."""
    msg_fmt = 'audit entry %(seq)s is anchored already'


class IllegalTransition(KororaError):
    """A move the state machine does not allow; nothing was changed.

    detail, when given, says why (what is allowed from old, say).
    """
    msg_fmt = ('migration %(migration_uuid)s: %(old)s -> %(new)s is not '
               'allowed')

    def __init__(self, migration_uuid, old, new, detail=None):
        self.migration_uuid = migration_uuid
        self.old = old
        self.new = new
        message = IllegalTransition.msg_fmt % {
            'migration_uuid': migration_uuid, 'old': old, 'new': new}
        if detail:
            message += ' (%s)' % detail
        super().__init__(message)


class ConcurrentTransition(IllegalTransition):
    """Another service moved the migration first; nothing was changed."""
    msg_fmt = ('migration %(migration_uuid)s: %(old)s -> %(new)s is not '
               'allowed (it is %(now)s now: another service moved it first)')

    def __init__(self, migration_uuid, old, new, now):
        self.now = now
        super().__init__(
            migration_uuid, old, new,
            'it is %s now: another service moved it first' % now)


# Migration documents: the signed request and the integrity manifest.

class RequestError(KororaError):
    """A migration request is missing, malformed, unsigned, stale or not
    for this migration."""
    msg_fmt = 'the migration request is refused: %(reason)s'


class ManifestError(KororaError):
    """A manifest is missing, malformed, unsigned or not for this
    migration."""
    msg_fmt = 'the integrity manifest is refused: %(reason)s'


# An instance's state, measured on a compute host.

class InstanceStateError(KororaError):
    """An instance's state could not be measured: missing, unreadable,
    oversized, malformed, or failing its own integrity check.

    ``item`` names the item concerned ('vtpm-state', 'nvram',
    'domain-security', 'disk:vda') when there is one, so that a caller
    quarantining the instance can name it.
    """
    msg_fmt = 'the instance state cannot be measured: %(reason)s'

    def __init__(self, message=None, item=None, **kwargs):
        super().__init__(message, **kwargs)
        self.item = item


class MigrationRefused(InstanceStateError):
    """The instance's vTPM cannot migrate at all; ``reason`` says why."""
    msg_fmt = 'the vTPM cannot migrate: %(reason)s'

    def __init__(self, reason, item=None):
        super().__init__(reason, item=item)
        self.reason = reason


class DomainXMLError(InstanceStateError):
    """A domain definition is oversized, malformed or unsafe to parse.

    Its item is 'domain-security' (korora_nova.hypervisors.base's
    DOMAIN_SECURITY; this module imports nothing of korora_nova).
    """
    msg_fmt = 'domain XML refused: %(reason)s'

    def __init__(self, message=None, **kwargs):
        super().__init__(message, item='domain-security', **kwargs)


# The migration steps.

class NotAuthorized(KororaError):
    """A vTPM manager call without the verifier's authorization for it."""
    msg_fmt = 'not authorized by the verifier: %(reason)s'


class StepRefused(KororaError):
    """The verifier refused a migration step (its signed reasons), or its
    answer was not believed."""
    msg_fmt = 'the verifier refused the step: %(reason)s'


class StepNotRun(KororaError):
    """A migration step that could not run (a service down or
    restarting, a timeout, a busy database): nothing was decided, so it
    may be tried again."""
    msg_fmt = 'the step could not run: %(reason)s'


class StepNotProven(KororaError):
    """The verifier: a step its evidence does not prove (the reason goes
    back to the hook, signed)."""
    msg_fmt = 'not proven: %(reason)s'


class Quarantined(KororaError):
    """The verifier found the arrival different from the manifest."""
    msg_fmt = '%(item)s: %(reason)s'

    def __init__(self, item, reason, record):
        super().__init__(reason)
        self.item = item
        self.reason = reason
        self.record = record


class IntegrityFailure(KororaError):
    """What differed (item) and why, before the quarantine."""
    msg_fmt = '%(item)s: %(reason)s'

    def __init__(self, item, reason):
        super().__init__(reason)
        self.item = item
        self.reason = reason


class HandoverError(KororaError):
    """The secret could not be sealed to, or opened by, the destination."""
    msg_fmt = 'the vTPM secret cannot be handed over: %(reason)s'


# A migration korora-manage runs itself (korora_nova.direct_migration).

class PeerError(KororaError):
    """The other host's half of a direct migration cannot be reached,
    ended, or broke the wire format. Nothing it said was believed."""
    msg_fmt = 'the other host\'s half of the migration: %(reason)s'


class SSHCommandRefused(KororaError):
    """A gated ssh key asked for something other than server receive."""
    msg_fmt = '%(reason)s'


class DomainError(KororaError):
    """libvirt cannot find, move, pause or resume the domain."""
    msg_fmt = 'libvirt: %(reason)s'


# korora-api.

class VerifierUnavailable(KororaError):
    """korora-verifier did not answer a write korora-api sent it."""
    msg_fmt = 'korora-verifier cannot be reached: %(reason)s'


class VerifierRefused(KororaError):
    """korora-verifier refused a write korora-api sent it; error_type
    names the verifier's exception (HostNotFound, PolicyExists...)."""
    msg_fmt = 'korora-verifier refused: %(reason)s'

    def __init__(self, message=None, error_type=None, **kwargs):
        self.error_type = error_type
        super().__init__(message, **kwargs)
