"""The exceptions korora-nova raises.

Every error that can reach a caller is a KororaError, so callers (the
CLI, the verifier, Nova's compute service) need to catch only one family
and can show its message to an operator as it is.
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


class ConfigurationError(KororaError):
    """An option or a file it names is missing or unusable."""


class TPMError(KororaError):
    """The TPM refused a command or could not be reached."""


class TPMConnectionError(TPMError):
    """The TPM could not be reached; the next command reopens the link."""


class SoftwareTPMError(KororaError):
    """A software TPM (swtpm) could not be set up or started."""


class EvidenceError(KororaError):
    """Evidence is malformed, oversized or of an unsupported kind."""


class EndorsementError(KororaError):
    """An endorsement key or its certificate cannot be trusted."""


class EnrollmentError(KororaError):
    """A host could not be enrolled: its identity was not proven."""


class PolicyError(KororaError):
    """A reference policy file is malformed."""


class HostNotFound(KororaError):
    """No enrolled host has that name."""


class HostExists(KororaError):
    """A host of that name is already enrolled."""


class PolicyNotFound(KororaError):
    """No reference policy has that name (and version)."""


class PolicyExists(KororaError):
    """That version of the policy was imported already."""


class MigrationNotFound(KororaError):
    """No migration record has that UUID."""


class MigrationExists(KororaError):
    """A migration record with that UUID exists already."""


class MigrationStateChanged(KororaError):
    """A migration is no longer in the state its move was decided from:
    another service moved it first; nothing was changed."""

    def __init__(self, migration_uuid, expected, actual):
        self.migration_uuid = migration_uuid
        self.expected = expected
        self.actual = actual
        super().__init__('migration %s: not %s but %s now'
                         % (migration_uuid, expected, actual))


class AuditAnchorExists(KororaError):
    """That audit entry is anchored already."""


class DatabaseError(KororaError):
    """The verifier database cannot be reached or used."""


class SignedResultError(EvidenceError):
    """A verifier answer is unsigned, forged, expired or not for this
    request: it is not believed."""


class NotAuthorized(KororaError):
    """A vTPM manager call without the verifier's authorization for it."""


class StepRefused(KororaError):
    """The verifier refused a migration step (its signed reasons), or its
    answer was not believed."""
    msg_fmt = 'the verifier refused the step: %(reason)s'


class Quarantined(KororaError):
    """The verifier found the arrival different from the manifest."""
    msg_fmt = '%(item)s: %(reason)s'

    def __init__(self, item, reason, record):
        super().__init__(reason)
        self.item = item
        self.reason = reason
        self.record = record


class StepNotProven(KororaError):
    """The verifier: a step its evidence does not prove (the reason goes
    back to the hook, signed)."""
    msg_fmt = 'not proven: %(reason)s'


class MeasurementFailed(TPMError):
    """A vTPM manager could not measure an item (item names it)."""
    msg_fmt = '%(item)s could not be measured: %(reason)s'

    def __init__(self, message, item):
        super().__init__(message)
        self.item = item


class PolicySignatureError(PolicyError):
    """A policy version is not signed by an operator key the verifier
    trusts, or its signed content differs from the stored one."""


class SigningKeyError(ConfigurationError):
    """An operator's policy signing key (private or public) cannot be
    read or is not an EC P-256 key."""
