"""The verifier's RPC endpoint and its attestation schedule."""

import base64
import binascii
import concurrent.futures
import threading
import time

import oslo_messaging as messaging
from oslo_log import log as logging

from korora_nova.attestation import operator_answers
from korora_nova.attestation import pcr_values as pcr_module
from korora_nova.db import api as db
from korora_nova import exception
from korora_nova.migration import audit
from korora_nova.verifier import admin
from korora_nova.verifier import attestation

LOG = logging.getLogger(__name__)

# After a failed anchoring, wait this long (at most) before the next try:
# each try walks the log and may wait for an unreachable host.
ANCHOR_RETRY = 60.0


class Verifier:
    """Endpoint of topic [korora] verifier_topic, shared by all workers."""

    target = messaging.Target(version='1.6')

    def __init__(self, conf, attestor, steps=None):
        """steps: the migration steps (verifier.migrations.MigrationSteps);
        without them the 1.1 calls are refused."""
        self.conf = conf
        self.attestor = attestor
        self.steps = steps
        self.admin_requests = admin.AdminRequests()
        self._stop = threading.Event()
        self._scheduler = None
        self._anchor_retry_at = 0.0
        self._recovery_at = 0.0
        self._pool = concurrent.futures.ThreadPoolExecutor(
            conf.korora.attestations_in_flight,
            thread_name_prefix='korora-attest')
        self._writer = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix='korora-verdicts')

    # RPC API 1.0

    def pcrs_changed(self, ctxt, host):
        """A host saw its PCRs change: attest it now."""
        try:
            verdict = self.attestor.attest(host)
        except exception.HostNotFound:
            LOG.warning('PCR change reported by %s, which is not enrolled',
                        host)
            return
        LOG.info('%s attested after a PCR change: %s', host,
                 verdict.summary())

    def attest_host(self, ctxt, host):
        return self.attestor.attest(host).to_json()

    # RPC API 1.1: the steps of a live migration. Each answers a token
    # signed by the verifier (korora_nova.attestation.results).

    def migration_request(self, ctxt, instance_uuid, source, dest, nonce,
                          signed_request=None):
        return self._steps().request(instance_uuid, source, dest,
                                     signed_request, _nonce(nonce))

    def migration_attest_destination(self, ctxt, migration_uuid, source,
                                     nonce):
        return self._steps().attest_destination(migration_uuid, source,
                                                _nonce(nonce))

    def migration_authorize(self, ctxt, migration_uuid, host, action, nonce):
        return self._steps().authorize(migration_uuid, host, action,
                                       _nonce(nonce))

    def migration_measured(self, ctxt, migration_uuid, source,
                           signed_manifest, nonce):
        return self._steps().measured(migration_uuid, source,
                                      signed_manifest, _nonce(nonce))

    def migration_arrived(self, ctxt, migration_uuid, dest, signed_arrival,
                          nonce):
        return self._steps().arrived(migration_uuid, dest, signed_arrival,
                                     _nonce(nonce))

    def migration_committed(self, ctxt, migration_uuid, source, counter,
                            nonce):
        return self._steps().committed(migration_uuid, source, counter,
                                       _nonce(nonce))

    def migration_abort(self, ctxt, migration_uuid, host, reason, nonce):
        return self._steps().abort(migration_uuid, host, reason,
                                   _nonce(nonce))

    def migration_quarantine(self, ctxt, migration_uuid, host, item, reason,
                             nonce):
        return self._steps().quarantine(migration_uuid, host, item, reason,
                                        _nonce(nonce))

    def migrations_in_flight(self, ctxt, host, instance_uuid, nonce):
        return self._steps().in_flight(host, instance_uuid, _nonce(nonce))

    # RPC API 1.6: the record of one migration, read only, for a host
    # that takes part in it (beside the 1.1 steps it serves).

    def migration_show(self, ctxt, migration_uuid, host, nonce):
        return self._steps().show(migration_uuid, host, _nonce(nonce))

    # RPC API 1.3: korora-api's writes. Each carries admin_token, the
    # request korora-api signed for this operation and exactly these
    # arguments (attestation.admin_request); without it nothing is done.

    def admin_enroll_host(self, ctxt, admin_token, host, policy,
                          trust_on_first_use):
        requester = self._admin(admin_token, 'enroll_host', {
            'host': host, 'policy': policy,
            'trust_on_first_use': trust_on_first_use})
        admin.enroll(self.attestor.manager_api, host, policy,
                     trust_on_first_use is True, requester)

    def admin_remove_host(self, ctxt, admin_token, host):
        requester = self._admin(admin_token, 'remove_host', {'host': host})
        admin.remove(host, requester)

    def admin_attest_host(self, ctxt, admin_token, host):
        requester = self._admin(admin_token, 'attest_host', {'host': host})
        verdict = self.attestor.attest(host, requester)
        LOG.info('%s attested for user %s: %s', host,
                 requester.get('user_id'), verdict.summary())
        return verdict.to_json()

    def admin_set_host_policy(self, ctxt, admin_token, host, policy):
        requester = self._admin(admin_token, 'set_host_policy', {
            'host': host, 'policy': policy})
        admin.set_policy(host, policy, requester)

    def admin_import_policy(self, ctxt, admin_token, document, signature,
                            active):
        requester = self._admin(admin_token, 'import_policy', {
            'document': document, 'signature': signature,
            'active': active})
        reference = admin.signed_policy(document, signature)
        admin.import_policy(reference, signature, active is True, requester)

    def admin_activate_policy(self, ctxt, admin_token, name, version):
        requester = self._admin(admin_token, 'activate_policy', {
            'name': name, 'version': version})
        admin.set_active(name, version, True, requester)

    def admin_deactivate_policy(self, ctxt, admin_token, name, version):
        requester = self._admin(admin_token, 'deactivate_policy', {
            'name': name, 'version': version})
        admin.set_active(name, version, False, requester)

    # RPC API 1.4: the last korora-manage operations for korora-api.
    # 1.5: with the nonce of the operator's client, the answer also
    # carries it signed (attestation.operator_answers), and the admin
    # request binds the nonce too.

    def admin_anchor_audit(self, ctxt, admin_token, host, nonce=None):
        """audit.anchor with host's TPM for the requester (the entry it
        signs names them)."""
        arguments = _read_arguments(host, nonce)
        requester = self._admin(admin_token, 'anchor_audit', arguments)
        client_nonce = self._client_nonce(nonce)
        row = audit.anchor(self.attestor.manager_api, host, requester)
        anchor = {'seq': row.seq, 'entry_hash': audit.entry_hash(row.seq),
                  'host': row.host, 'created_at': _iso(row.created_at)}
        if client_nonce is not None:
            anchor['token'] = operator_answers.sign_anchor(
                self._steps().signer, anchor, client_nonce,
                self.conf.korora.result_lifetime)
        return anchor

    def admin_quote_host(self, ctxt, admin_token, host, nonce=None):
        """The PCR values host's TPM quotes now, verified as
        record_policy verifies them, for an operator who signs the
        policy with their own key (which never reaches the verifier)."""
        arguments = _read_arguments(host, nonce)
        requester = self._admin(admin_token, 'quote_host', arguments)
        client_nonce = self._client_nonce(nonce)
        values = attestation.quoted_values(self.attestor.manager_api, host)
        LOG.info('%s quoted for user %s', host, requester.get('user_id'))
        answer = {'host': host, 'pcr_values': pcr_module.to_json(values),
                  'quoted_at': _iso(db.utcnow())}
        if client_nonce is not None:
            answer['token'] = operator_answers.sign_quote(
                self._steps().signer, host, answer['pcr_values'],
                answer['quoted_at'], client_nonce,
                self.conf.korora.result_lifetime)
        return answer

    def _client_nonce(self, nonce):
        """The client's nonce as bytes (None before 1.5); checked, and
        the signing key found, before the read changes anything."""
        if nonce is None:
            return None
        self._steps()
        return operator_answers.nonce_from_claim(nonce)

    def _admin(self, token, operation, arguments):
        return self.admin_requests.accept(token, operation, arguments)

    def _steps(self):
        if self.steps is None:
            raise exception.ConfigurationError(
                'this verifier worker has no signing key: it takes no part '
                'in live migrations')
        return self.steps

    # Schedule

    def start(self):
        self._stop.clear()
        self._scheduler = threading.Thread(
            target=self._schedule, name='korora-attestation-schedule',
            daemon=True)
        self._scheduler.start()

    def stop(self):
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout=10)
        self._pool.shutdown(wait=False)
        self._writer.shutdown(wait=False)

    def run_due(self):
        """Attest every host whose turn has come; returns how many.

        A pipeline: claims keep [korora] attestations_in_flight
        challenges waiting for their quotes (one statement claims as many
        hosts as there are free places), and the verdicts are written
        verdict_batch_size at a time by another thread, one batch after
        the other, while the next quotes are awaited. It returns when no
        host is due and every verdict is written.
        """
        options = self.conf.korora
        in_flight, batch_size = (options.attestations_in_flight,
                                 options.verdict_batch_size)
        waiting, verdicts, policies = set(), [], {}
        attested, more_due, writing = 0, True, None
        while waiting or verdicts or more_due:
            free = in_flight - len(waiting)
            if more_due and not self._stop.is_set() and (
                    free >= in_flight // 2 or not waiting):
                hosts = self._claim_quietly(free)
                more_due = len(hosts) == free
                waiting.update(self._pool.submit(
                    self._challenge_quietly, host,
                    self._policies(policies, host)) for host in hosts)
            elif self._stop.is_set():
                more_due = False
            if waiting:
                done, waiting = concurrent.futures.wait(
                    waiting, return_when=concurrent.futures.FIRST_COMPLETED)
                verdicts.extend(record for record in (
                    future.result() for future in done) if record)
            if verdicts and (len(verdicts) >= batch_size or not waiting):
                if writing is not None:
                    attested += writing.result()
                writing = self._writer.submit(self._record_quietly, verdicts)
                verdicts = []
        if writing is not None:
            attested += writing.result()
        return attested

    def _claim_quietly(self, limit):
        """Due hosts claimed for this worker; none when the database
        fails (the round then finishes what it holds)."""
        try:
            return db.hosts_claim_due(self.conf.korora.attestation_interval,
                                      limit=limit)
        except exception.KororaError as error:
            LOG.error('claiming due hosts failed: %s', error)
            return []

    @staticmethod
    def _policies(policies, host):
        """The host's signed policies, read and checked once per round
        for all the hosts that share them."""
        name = attestation.policy_name(host)
        if name not in policies:
            policies[name] = attestation.signed_policies_named(
                name, 'hosts of policy %s' % name)
        return policies[name]

    def _challenge_quietly(self, host, policies):
        try:
            return self.attestor.challenge(host, policies)
        except exception.KororaError as error:
            LOG.error('%s: attestation failed: %s', host.name, error)
            return None

    def _record_quietly(self, verdicts):
        try:
            return len(self.attestor.record(verdicts))
        except exception.KororaError as error:
            LOG.error('%d verdicts (%s) not recorded: %s', len(verdicts),
                      ', '.join(record.host_name for record in verdicts),
                      error)
            return 0

    def anchor_due(self):
        """Anchor the audit log in [korora] audit_anchor_host's TPM when
        audit_anchor_entries or audit_anchor_interval says so; returns
        the new anchor or None."""
        options = self.conf.korora
        if not options.audit_anchor_host or (
                time.monotonic() < self._anchor_retry_at):
            return None
        try:
            return audit.anchor_due(self.attestor.manager_api,
                                    options.audit_anchor_host,
                                    options.audit_anchor_entries,
                                    options.audit_anchor_interval)
        except exception.KororaError as error:
            self._anchor_retry_at = time.monotonic() + min(
                ANCHOR_RETRY, options.audit_anchor_interval)
            LOG.error('scheduled anchoring of the audit log with %s\'s '
                      'TPM failed: %s', options.audit_anchor_host, error)
            return None

    def recover_due(self):
        """Every [korora] recovery_interval seconds: abort the stale
        records nothing can finish (MigrationSteps.recover_stale);
        returns their uuids."""
        interval = self.conf.korora.recovery_interval
        if self.steps is None or not interval or (
                time.monotonic() < self._recovery_at):
            return []
        self._recovery_at = time.monotonic() + interval
        try:
            return self.steps.recover_stale()
        except exception.KororaError as error:
            LOG.error('recovery of stale migrations failed: %s', error)
            return []

    def _schedule(self):
        tick = min(1.0, self.conf.korora.attestation_interval)
        while not self._stop.wait(tick):
            try:
                self.run_due()
                self.anchor_due()
                self.recover_due()
            except exception.KororaError as error:
                LOG.error('scheduled attestation round failed: %s', error)
            except Exception:
                # Keep the schedule alive whatever one round met (a
                # database outage, say); the error is logged in full.
                LOG.exception('scheduled attestation round failed')


def _read_arguments(host, nonce):
    """What korora-api signed for an operator's read: the nonce too when
    its client sent one (1.5)."""
    if nonce is None:
        return {'host': host}
    return {'host': host, 'nonce': nonce}


def _iso(value):
    """UTC as korora-api shows times (api.util.iso)."""
    return value.isoformat(timespec='seconds') + 'Z'


def _nonce(text):
    """The hook's nonce (base64 on the bus), bounded."""
    try:
        nonce = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise exception.EvidenceError('the nonce is not base64')
    if not 16 <= len(nonce) <= 64:
        raise exception.EvidenceError('a nonce is 16 to 64 bytes')
    return nonce
