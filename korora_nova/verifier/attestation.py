"""Attesting one enrolled host: challenge, appraise, record, announce.

Fail closed: an unreachable vTPM manager, a malformed reply or a missing
policy all give an untrusted verdict with the reason, recorded like any
other. So does a policy no trusted operator key signed: it is ignored,
and a host left without a signed policy is untrusted.
"""

import dataclasses
import os

from oslo_log import log as logging

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import purpose
from korora_nova.attestation import verdict as verdict_module
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova import exception

CONF = conf.CONF
LOG = logging.getLogger(__name__)

NONCE_SIZE = 32
# Reason codes of an attestation that got no quote to judge: the
# manager did not answer (worth another try), or it answered no quote.
UNREACHABLE = 'unreachable'
NO_QUOTE = 'no-quote'


def _untrusted(host, code, message, policy=None):
    reason = verdict_module.Reason(code, '%s: %s' % (host, message))
    return verdict_module.Verdict(False, False, (reason,), host, policy)


def active_policies(host):
    """The host's policy, every active version an operator signed,
    newest first."""
    return signed_policies(host)[0]


def signed_policies(host):
    """(active versions of the host's policy signed by a trusted operator
    key, newest first; why each other active version is ignored)."""
    return signed_policies_named(policy_name(host), host.name)


def policy_name(host):
    return host.policy_name or CONF.korora.default_policy


def signed_policies_named(name, who):
    """signed_policies of policy name; who: the hosts it is read for,
    as the log should name them."""
    if not name:
        return [], []
    rows = db.policies_active(name)
    try:
        keys = policy_module.trusted_keys(CONF.korora.policy_signing_keys)
    except exception.KororaError as error:
        LOG.error('%s: no policy can be trusted: %s', who, error)
        return [], ['[korora] policy_signing_keys: %s' % error]
    policies, ignored = [], []
    for row in rows:
        try:
            policies.append(policy_module.verified(
                row.name, row.version, row.document, row.signature, keys))
        except exception.PolicyError as error:
            LOG.warning('%s: ignoring a policy version: %s', who, error)
            ignored.append(str(error))
    return policies, ignored


def attestation_data(nonce):
    """What the TPM signs for the verifier's challenge nonce."""
    return purpose.qualifying_data(purpose.ATTEST, nonce)


def previous_clock(host):
    if host.last_reset_count is None:
        return None
    return evidence.ClockInfo(clock=host.last_clock,
                              reset_count=host.last_reset_count,
                              restart_count=0, safe=True)


def appraise_host(host, quote, qualifying_data, policies, in_order=True):
    """Trusted if any active version of the host's policy accepts it.

    qualifying_data: what the quote must have signed (the nonce under the
    attestation purpose, korora_nova.attestation.purpose). in_order: the
    quote was made after the host's last recorded one, so its clock must
    not be behind (False for a quote the host made on its own, which may
    race the verifier's attestations).

    During a fleet upgrade several versions are active at once; the
    newest one's reasons are reported when none accepts.
    """
    ak_key = appraisal.load_public_key(host.ak_public)
    clock = previous_clock(host) if in_order else None
    first = None
    for reference in policies:
        verdict = appraisal.appraise_quote(quote, ak_key, qualifying_data,
                                           reference,
                                           clock, host=host.name)
        if verdict.trusted:
            return verdict
        first = first or verdict
    return first


def quoted_values(manager_api, host_name):
    """The PCR values an enrolled host's TPM quotes now, verified
    against its enrolled AK and a fresh nonce: what a policy recorded
    from a known-good host may allow (record_policy, and korora-api's
    quote for an operator who signs the policy on their own machine).
    """
    host = db.host_get(host_name)
    nonce = os.urandom(NONCE_SIZE)
    quote = manager_api.attest(host_name, nonce)
    verdict = appraisal.appraise_quote(
        quote, appraisal.load_public_key(host.ak_public),
        attestation_data(nonce), None, previous_clock(host),
        host=host_name)
    if not verdict.evidence_valid:
        raise exception.EvidenceError(
            'cannot record a policy from %s: %s'
            % (host_name, verdict.summary()))
    # Only values the TPM signed: a host cannot slip in unquoted PCRs.
    return verdict.pcr_values


def record_policy(manager_api, host_name, name, version, signing_key):
    """A policy allowing exactly what a known-good host quotes now
    (quoted_values), signed with the operator's signing_key
    (attestation.policy)."""
    reference = policy_module.from_values(
        name, version, quoted_values(manager_api, host_name))
    db.policy_create(reference,
                     signature=policy_module.sign(reference, signing_key))
    return reference


def judge(host, quote, qualifying_data, in_order=True):
    """The verdict of a quote the host made over qualifying_data, under
    its operator-signed policies (see appraise_host for in_order);
    untrusted, naming why, when none is active."""
    policies, ignored = signed_policies(host)
    if not policies:
        return _no_policy(host, ignored)
    return _with_ignored(appraise_host(host, quote, qualifying_data,
                                       policies, in_order), ignored)


def _no_policy(host, ignored):
    return _untrusted(
        host.name, verdict_module.NO_POLICY,
        'no active reference policy is assigned (policy %s)%s'
        % (policy_name(host) or 'none',
           ''.join('; ' + why for why in ignored)))


def _with_ignored(verdict, ignored):
    """An untrusted verdict also says which versions were ignored: the
    one the operator meant may be among them."""
    if verdict.trusted or not ignored:
        return verdict
    return dataclasses.replace(verdict, reasons=verdict.reasons + tuple(
        verdict_module.Reason(verdict_module.NO_POLICY,
                              '%s: ignored %s' % (verdict.host, why))
        for why in ignored))


class Attestor:
    """Attests hosts; shared by the verifier service and korora-manage."""

    def __init__(self, manager_api, notifier=None, placement=None):
        self.manager_api = manager_api
        self.notifier = notifier
        self.placement = placement

    def attest(self, host_name, requester=None):
        """Attest one host now and record its verdict; requester: who
        asked through korora-api, named in the verdict's audit entry."""
        host = db.host_get(host_name)
        record = self.challenge(host, signed_policies(host))
        verdicts = self.record([record._replace(requester=requester)])
        if not verdicts:
            raise exception.HostNotFound('host %s is not enrolled' % host_name)
        return verdicts[0]

    def challenge(self, host, signed):
        """Challenge host (a Host row, or a db ClaimedHost) and judge its
        quote under signed (its signed_policies); the verdict is not
        recorded yet: a db.VerdictRecord for record()."""
        policies, ignored = signed
        nonce = os.urandom(NONCE_SIZE)
        quote = None
        if not policies:
            verdict = _no_policy(host, ignored)
        else:
            try:
                quote = self.manager_api.attest(host.name, nonce)
            except exception.KororaError as error:
                code = (UNREACHABLE if isinstance(
                    error, exception.TPMConnectionError) else NO_QUOTE)
                verdict = _untrusted(host.name, code,
                                     'no valid quote: %s' % error,
                                     policies[0].label)
            else:
                verdict = _with_ignored(appraise_host(
                    host, quote, attestation_data(nonce), policies), ignored)
        clock = verdict.attestation.clock_info if (
            verdict.trusted and verdict.attestation) else None
        return db.VerdictRecord(host.name, verdict, nonce, quote, clock)

    def record(self, records):
        """Record verdicts (challenge's) in one transaction, log each and
        announce each change of trust; returns the verdicts kept (not
        those of hosts removed meanwhile)."""
        verdicts = []
        for record, written in zip(records, db.record_verdicts(records)):
            verdict = record.verdict
            if written is None:
                LOG.warning('%s was removed while it was attested; its '
                            'verdict is not kept: %s', record.host_name,
                            verdict.summary())
                continue
            row, previous = written
            log = LOG.info if verdict.trusted else LOG.warning
            log('%s', verdict.summary())
            if previous != verdict.trusted:
                self._announce(record.host_name, verdict, row)
            verdicts.append(verdict)
        return verdicts

    def _announce(self, host_name, verdict, row):
        payload = {'host': host_name,
                   'trusted': verdict.trusted,
                   'summary': verdict.summary(),
                   'reasons': [r.message for r in verdict.reasons],
                   'policy': verdict.policy,
                   'verified_at': row.created_at.isoformat()}
        if self.notifier is not None:
            self.notifier.info({}, 'korora.host.trust.update', payload)
        if self.placement is not None:
            try:
                self.placement.set_trusted(host_name, verdict.trusted)
            except exception.KororaError as error:
                LOG.warning('%s: Placement trait not updated: %s',
                            host_name, error)
