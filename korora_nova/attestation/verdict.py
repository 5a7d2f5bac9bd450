"""The outcome of judging evidence: trusted or not, and every reason."""

import dataclasses

# Reason codes: stable words a program can match; the message is for
# people.
MALFORMED = 'malformed'
UNSUPPORTED = 'unsupported-algorithm'
WRONG_TYPE = 'wrong-type'
SIGNATURE = 'signature'
NONCE = 'nonce'
PCR_DIGEST = 'pcr-digest'
PCR_POLICY = 'pcr-policy'
NO_POLICY = 'no-policy'
CLOCK = 'clock'
CERTIFIED_KEY = 'certified-key'


@dataclasses.dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def __str__(self):
        return self.message


@dataclasses.dataclass(frozen=True)
class Verdict:
    """trusted is True only when the evidence is valid and every check of
    the policy passed; evidence_valid says whether the evidence itself is
    genuine, fresh and consistent (what tpm2_checkquote judges)."""

    trusted: bool
    evidence_valid: bool
    reasons: tuple = ()
    host: str = None
    policy: str = None
    attestation: object = None   # evidence.Attestation, when it parsed
    pcr_values: dict = None      # the quoted values, when they verified

    def codes(self):
        return {reason.code for reason in self.reasons}

    def summary(self):
        """One line for a log or a terminal; reasons name the host."""
        if self.trusted:
            under = ' under policy %s' % self.policy if self.policy else ''
            return '%s: trusted%s' % (self.host or 'evidence', under)
        return 'untrusted: %s' % '; '.join(str(r) for r in self.reasons)

    def to_json(self):
        from korora_nova.attestation import pcr_values as pcr_module
        return {
            'host': self.host,
            'trusted': self.trusted,
            'evidence_valid': self.evidence_valid,
            'policy': self.policy,
            'reasons': [{'code': r.code, 'message': r.message}
                        for r in self.reasons],
            'quote': (self.attestation.to_json()
                      if self.attestation is not None else None),
            'pcr_values': (pcr_module.to_json(self.pcr_values)
                           if self.pcr_values else None),
        }
