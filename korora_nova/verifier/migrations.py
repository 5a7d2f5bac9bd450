"""The verifier's half of a Kororā live migration: the only writer of its
record.

The live-migration hooks on the compute hosts hold no database
credentials. Each step they run is a call to the verifier, which checks
that step's TPM-signed evidence itself before it moves the record, and
answers with a signed attestation result (korora_nova.attestation.
results) bound to the hook's nonce and to the migration:

=================  ==========  ==============================================
call               caller      what the verifier checks, then records
=================  ==========  ==============================================
request            destination the request, signed by the destination's AK
                               for the request purpose, fresh and never
                               used (migration.request): REQUESTED; a
                               fresh quote of the source (its own nonce,
                               the enrolled AK, the active policy):
                               PEERS_ATTESTED; at the same time, the
                               destination's key for this migration
                               certified by its AK over the verifier's
                               nonce, within [korora]
                               request_certify_window ms of the request's
                               quote by its TPM's clock: KEY_CERTIFIED
attest_destination source      no untrusted verdict of the destination
                               since the request; the certified key. If
                               it was not certified with the request: a
                               fresh quote of the destination, then the
                               certification
authorize          either      the record's state and the caller's role;
                               answers with the authorization of one vTPM
                               manager call (transfer: TRANSFERRING)
measured           source      the manifest, signed by the source's AK for
                               the manifest purpose, bound to this
                               migration, its counter never committed:
                               MEASURED
arrived            destination the arrival measurement, signed by the
                               destination's AK for the arrival purpose,
                               equal to the manifest: VERIFIED, or
                               QUARANTINED naming what differs
committed          source      the counter advanced past the manifest's:
                               COMMITTED
abort, quarantine  a party     ABORTED / QUARANTINED (never out of a final
                               state)
in_flight          either      the host's migrations not final
=================  ==========  ==============================================

A refusal is a signed result too (ear.status contraindicated, with the
reasons), so a hook can tell the verifier's "no" from a forged one. A
step that could not run here (the database busy, a vTPM manager
unreachable: NOT_RUN) is refused with korora.retry and aborts nothing:
the hook asks again (korora_nova.hooks.retry). Only a comparison of two
signed measurements quarantines.
"""

import base64
from concurrent import futures
import json
import os

from oslo_log import log as logging

from korora_nova.attestation import appraisal
from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova.db import api as db
from korora_nova.db import audit_log
from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.migration import manifest as manifest_module
from korora_nova.migration import records
from korora_nova.migration import request as request_module
from korora_nova.migration import states
from korora_nova.tpm import duplication
from korora_nova.verifier import attestation

LOG = logging.getLogger(__name__)

NONCE_SIZE = 32
MAX_REASON = 1000
MANIFEST_ITEM = 'manifest'

# Errors of a step that could not run: nothing was decided.
NOT_RUN = (exception.DatabaseError, exception.TPMConnectionError,
           exception.StepNotRun)

# Records in these states may be replaced by a new request: nothing has
# left the source yet.
SUPERSEDABLE = (states.REQUESTED, states.PEERS_ATTESTED,
                states.KEY_CERTIFIED)

# action -> (the caller's role, the state the record must be in).
AUTHORIZED = {
    results.TRANSFER: ('destination', states.KEY_CERTIFIED),
    results.MEASURE: ('source', states.TRANSFERRING),
    results.VERIFY: ('destination', states.MEASURED),
    results.COMMIT: ('source', states.VERIFIED),
}


def nonces(record):
    """(source_nonce, dest_nonce), hex, as the audit log recorded them:
    what the TPMs quoted when the verifier attested each host."""
    found = {}
    for entry in records.history(record.uuid):
        details = json.loads(entry.details)
        for name in ('source_nonce', 'dest_nonce', 'key_unique',
                     'key_public'):
            if name in details:
                found[name] = details[name]
    return found


def migration_claims(record):
    """What a token says of the migration record."""
    found = nonces(record)
    return {'uuid': record.uuid, 'instance_uuid': record.instance_uuid,
            'source_host': record.source_host, 'dest_host': record.dest_host,
            'state': record.state,
            'source_nonce': found.get('source_nonce'),
            'dest_nonce': found.get('dest_nonce'),
            'age': records.age(record)}


class MigrationSteps:
    """The steps, for the verifier's RPC endpoint."""

    def __init__(self, conf, attestor, manager_api, signer):
        self.conf = conf
        self.attestor = attestor
        self.manager_api = manager_api
        self.signer = signer
        # Runs a destination's key certification beside the source's
        # attestation (a blocking RPC each).
        self._beside = futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix='korora-certify')

    # Answers

    def _answer(self, subject, nonce, record=None, verdict=None,
                reasons=None, claims=None, retry=False):
        """A signed result about subject bound to the hook's nonce."""
        body = {'eat_nonce': results.nonce_claim(nonce)}
        if retry:
            body[results.RETRY_CLAIM] = True
        if verdict is not None:
            body.update(results.verdict_claims(verdict))
        else:
            body['submods'] = {subject: {
                'ear.status': (results.CONTRAINDICATED if reasons else
                               results.AFFIRMING),
                'korora.reasons': [str(r)[:MAX_REASON]
                                   for r in reasons or ()]}}
        if record is not None:
            body['korora.migration'] = migration_claims(record)
        body.update(claims or {})
        return self.signer.sign(results.RESULT, subject,
                                self.conf.korora.result_lifetime, body)

    def _refused(self, subject, nonce, reason, record=None, retry=False):
        LOG.warning('migration %s refused for %s%s: %s',
                    record.uuid if record is not None else '(new)', subject,
                    ' (could not run; the host may ask again)' if retry
                    else '', reason)
        return self._answer(subject, nonce, record, reasons=[reason],
                            retry=retry)

    def _not_run(self, subject, nonce, error, record=None):
        """The refusal of a step that could not run (error: NOT_RUN)."""
        return self._refused(subject, nonce, str(error), record, retry=True)

    def _run(self, subject, nonce, step, record=None, abort=True):
        """Run step(); a StepNotProven or any KororaError becomes a signed
        refusal, and aborts record first when abort; a step that could
        not run (NOT_RUN) is refused for a retry and aborts nothing."""
        try:
            return step()
        except NOT_RUN as error:
            return self._not_run(subject, nonce, error, record)
        except exception.IllegalTransition as error:
            # Another call moved the record first (a retry of this same
            # step, say): refused, and nothing is aborted for it.
            return self._refused(subject, nonce, str(error),
                                 records.get(record.uuid)
                                 if record is not None else None)
        except exception.KororaError as error:
            if record is not None and abort:
                self._abort(record.uuid, subject, str(error))
                record = records.get(record.uuid)
            return self._refused(subject, nonce, str(error), record)

    def _abort(self, migration_uuid, host, reason):
        try:
            records.transition(migration_uuid, host, states.ABORTED,
                               reason=reason[:MAX_REASON])
        except exception.IllegalTransition as error:
            LOG.info('migration %s not aborted: %s', migration_uuid, error)
        except exception.DatabaseError as error:
            # The hook aborts again on its failure path.
            LOG.error('migration %s not aborted: %s', migration_uuid, error)

    def _record(self, migration_uuid, host, role, state):
        """The record, if host plays role in it and it is in state (or
        one of the states, a tuple)."""
        try:
            record = records.get(migration_uuid)
        except exception.MigrationNotFound:
            raise exception.StepNotProven(
                'no migration %s is recorded' % migration_uuid)
        party = record.dest_host if role == 'destination' else (
            record.source_host)
        if party != host:
            raise exception.StepNotProven('%s is not the %s of migration %s'
                                          % (host, role, migration_uuid))
        wanted = state if isinstance(state, tuple) else (state,)
        if record.state not in wanted:
            raise exception.StepNotProven(
                'migration %s is %s, not %s'
                % (migration_uuid, record.state, ' or '.join(wanted)))
        return record

    def _attest(self, role, host):
        """A fresh verdict of host, trusted, or StepNotProven."""
        try:
            verdict = self.attestor.attest(host)
        except exception.HostNotFound:
            raise exception.StepNotProven(
                '%s host %s is not enrolled with korora-verifier'
                % (role, host))
        if not verdict.trusted:
            reasons = '; '.join(str(r) for r in verdict.reasons)
            if verdict.reasons and all(
                    reason.code == attestation.UNREACHABLE
                    for reason in verdict.reasons):
                # Its manager did not answer (restarting, the broker
                # down): untrusted for now, and worth another try.
                raise exception.StepNotRun(
                    reason='the %s host could not be attested: %s'
                    % (role, reasons))
            raise exception.StepNotProven(
                'the %s host is not trusted: %s' % (role, reasons))
        return verdict

    # 1. The destination asks; the source is attested.

    def request(self, instance_uuid, source, dest, signed_request, nonce):
        """REQUESTED, then at once PEERS_ATTESTED and KEY_CERTIFIED: the
        request's quote is the destination's attestation, and its key
        is certified while the source is attested (two TPMs at work at
        the same time). If the key cannot be certified now, the record
        stays PEERS_ATTESTED and attest_destination certifies it."""
        def step():
            if not source or not dest or source == dest:
                raise exception.StepNotProven(
                    'a migration needs a source and another '
                    'destination host (%s -> %s)' % (source, dest))
            request, dest_verdict = self._check_request(
                instance_uuid, source, dest, signed_request)
            self._supersede(instance_uuid, dest)
            record = records.create(
                request.migration_uuid(), instance_uuid, source, dest,
                host=dest, details={'request_nonce': request.nonce})
            certifying = self._beside.submit(self._certify_key, record,
                                             dest_verdict.attestation)
            try:
                verdict = self._attest('source', source)
            except exception.KororaError as error:
                futures.wait([certifying])
                self._abort(record.uuid, dest, str(error))
                raise
            key = self._certified_beside(record, dest, certifying)
            record = records.transition(
                record.uuid, dest, states.PEERS_ATTESTED,
                details={'dest_nonce': verdict.attestation.extra_data.hex(),
                         'source_nonce':
                         dest_verdict.attestation.extra_data.hex(),
                         'source_verdict': verdict.summary(),
                         'dest_verdict': dest_verdict.summary()},
                expected=states.REQUESTED)
            if key is not None:
                record = self._key_certified(record, dest, key)
            return self._answer(source, nonce, record, verdict)
        return self._run(source, nonce, step)

    def _certified_beside(self, record, dest, certifying):
        """The key certifying (a future) got, or None if the step could
        not run (the source's call certifies it then); any other failure
        aborts the record."""
        try:
            return certifying.result()
        except NOT_RUN as error:
            LOG.info('migration %s: the destination\'s key was not '
                     'certified with the request (%s); the source\'s call '
                     'will certify it', record.uuid, error)
            return None
        except exception.KororaError as error:
            self._abort(record.uuid, dest, str(error))
            raise

    def _key_certified(self, record, host, key):
        """KEY_CERTIFIED, with what the source will seal to."""
        return records.transition(
            record.uuid, host, states.KEY_CERTIFIED,
            details={'key_certification': key.attestation,
                     'key_unique': base64.b64encode(key.unique).decode(
                         'ascii'),
                     'key_public': base64.b64encode(key.public).decode(
                         'ascii')},
            expected=states.PEERS_ATTESTED)

    def _check_request(self, instance_uuid, source, dest, signed_request):
        """The destination's request, or StepNotProven: for exactly this
        migration, fresh, never used, signed by the destination's AK for
        the request purpose from PCRs its policy allows."""
        if signed_request is None:
            raise exception.StepNotProven(
                'the migration request is not signed by %s\'s '
                'vTPM manager (is korora-nova on %s older than '
                'the verifier?)' % (dest, dest))
        try:
            request, quote = request_module.load(signed_request)
            request_module.check(request, instance_uuid, source, dest,
                                 self.conf.korora.result_lifetime)
        except exception.RequestError as error:
            raise exception.StepNotProven(str(error))
        try:
            records.get(request.migration_uuid())
        except exception.MigrationNotFound:
            pass
        else:
            raise exception.StepNotProven(
                'the signed request of %s was used already '
                '(replay)' % dest)
        try:
            host = db.host_get(dest)
        except exception.HostNotFound:
            raise exception.StepNotProven(
                'destination host %s is not enrolled with '
                'korora-verifier' % dest)
        verdict = attestation.judge(host, quote, request.qualifying_data(),
                                    in_order=False)
        if not verdict.trusted:
            raise exception.StepNotProven(
                'the destination host is not trusted: %s (its signed '
                'migration request)' % '; '.join(str(reason) for reason in
                                                 verdict.reasons))
        return request, verdict

    def _supersede(self, instance_uuid, host):
        for stale in records.in_flight_for_instance(instance_uuid):
            if stale.state not in SUPERSEDABLE:
                raise exception.StepNotProven(
                    'migration %s of this instance is %s; it must '
                    'be finished first (korora-manage migration '
                    'show %s)' % (stale.uuid, stale.state,
                                  stale.uuid))
            try:
                records.transition(stale.uuid, host, states.ABORTED,
                                   reason='superseded by a new live '
                                   'migration request', expected=stale.state)
            except exception.IllegalTransition:
                pass    # finished meanwhile

    # 2. The source asks; the destination is attested, its key certified.

    def attest_destination(self, migration_uuid, source, nonce):
        """Also from PEERS_ATTESTED (a retry after the key's
        certification could not run) and KEY_CERTIFIED (a retry after the
        answer was lost: the same certified key again): the destination
        is attested afresh each time."""
        try:
            record = self._record(migration_uuid, source, 'source',
                                  (states.REQUESTED, states.PEERS_ATTESTED,
                                   states.KEY_CERTIFIED))
        except exception.StepNotProven as error:
            return self._refused(self._dest_of(migration_uuid, source),
                                 nonce, str(error))
        except NOT_RUN as error:
            return self._not_run(self._dest_of(migration_uuid, source),
                                 nonce, error)

        def step():
            dest = record.dest_host
            if record.state == states.KEY_CERTIFIED:
                # Certified with the request, bound by the destination
                # TPM's clock to the request's quote: no TPM is asked
                # again, unless the destination was found untrusted since.
                self._still_trusted(dest, record)
                return self._key_answer(dest, nonce, record)
            # The key could not be certified with the request: the
            # destination is attested afresh and its key certified now.
            verdict = self._attest('destination', dest)
            if record.state == states.REQUESTED:
                records.transition(
                    record.uuid, source, states.PEERS_ATTESTED,
                    details={'source_nonce':
                             verdict.attestation.extra_data.hex(),
                             'dest_verdict': verdict.summary()},
                    expected=states.REQUESTED)
            moved = self._key_certified(
                records.get(record.uuid), source,
                self._certify_key(records.get(record.uuid)))
            return self._key_answer(dest, nonce, moved, verdict)
        return self._run(record.dest_host, nonce, step, record)

    def _key_answer(self, dest, nonce, record, verdict=None):
        found = nonces(record)
        return self._answer(dest, nonce, record, verdict, claims={
            'korora.key': {'public': found.get('key_public'),
                           'unique': found.get('key_unique')}})

    def _still_trusted(self, dest, record):
        """StepNotProven if the verifier recorded an untrusted verdict of
        dest after the record was opened (its PCR watch, say)."""
        latest = next(iter(db.verdicts_for_host(dest, limit=1)), None)
        if latest is not None and not latest.trusted and (
                latest.created_at >= record.created_at):
            raise exception.StepNotProven(
                'the destination host is not trusted: %s (since migration '
                '%s was requested)' % ('; '.join(
                    reason['message'] for reason in json.loads(
                        latest.reasons)), record.uuid))

    @staticmethod
    def _dest_of(migration_uuid, fallback):
        """Whom a refusal of attest_destination is about: the record's
        destination (what the source checks it against), or the caller
        when the record cannot be read (the hook believes a "could not
        run" answer about itself: all it grants is a retry)."""
        try:
            return records.get(migration_uuid).dest_host
        except exception.KororaError:
            return fallback

    def _certify_key(self, record, request_quote=None):
        """The destination's certified key for record. request_quote: the
        Attestation of its request's quote, which stands as its
        attestation only if the certification follows it on the same
        TPM, unreset, within [korora] request_certify_window ms of the
        TPM's own clock."""
        dest = record.dest_host
        certify_nonce = os.urandom(NONCE_SIZE)
        token = self._authorization(record, dest, results.CERTIFY_KEY,
                                    certify_nonce)
        key = self.manager_api.certify_migration_key(dest, token)
        verdict = appraisal.appraise_certification(
            key.attestation, key.signature,
            appraisal.load_public_key(db.host_get(dest).ak_public),
            purpose.qualifying_data(purpose.CERTIFY, certify_nonce),
            key.public, host=dest)
        if not verdict.evidence_valid:
            raise exception.StepNotProven(
                'the destination\'s migration key is not certified '
                'by its attestation key: %s' % verdict.summary())
        if request_quote is not None:
            self._check_request_clock(dest, request_quote.clock_info,
                                      verdict.attestation.clock_info)
        try:
            duplication.check_receiver_key(key.public, 'the migration key')
        except exception.EvidenceError as error:
            raise exception.StepNotProven('%s: %s' % (dest, error))
        return key

    def _check_request_clock(self, dest, requested, certified):
        window = self.conf.korora.request_certify_window
        if (requested.reset_count, requested.restart_count) != (
                certified.reset_count, certified.restart_count) or not (
                0 <= certified.clock - requested.clock <= window):
            raise exception.StepNotProven(
                '%s: its migration request was not quoted within %d ms of '
                'its TPM\'s clock before its key was certified (clock %d '
                '-> %d ms, resets %d -> %d, restarts %d -> %d): a stale or '
                'replayed request' % (
                    dest, window, requested.clock, certified.clock,
                    requested.reset_count, certified.reset_count,
                    requested.restart_count, certified.restart_count))

    def _authorization(self, record, host, action, nonce, claims=None):
        body = {'korora.action': action,
                'korora.role': results.ROLES[action],
                'korora.migration': migration_claims(record),
                'eat_nonce': results.nonce_claim(nonce)}
        body.update(claims or {})
        return self.signer.sign(results.AUTHORIZATION, host,
                                self.conf.korora.authorization_lifetime, body)

    # 3-6. Authorizations of the managers' calls.

    def authorize(self, migration_uuid, host, action, nonce):
        if action not in AUTHORIZED:
            return self._refused(host, nonce, 'no such step %r' % action)
        role, state = AUTHORIZED[action]
        try:
            record = self._record(migration_uuid, host, role, state)
        except exception.StepNotProven as error:
            return self._refused(host, nonce, str(error))
        except NOT_RUN as error:
            return self._not_run(host, nonce, error)

        def step():
            claims = {}
            if action == results.TRANSFER:
                claims['korora.key_unique'] = nonces(record).get(
                    'key_unique')
                moved = records.transition(record.uuid, host,
                                           states.TRANSFERRING,
                                           expected=states.KEY_CERTIFIED)
            else:
                moved = record
            if action == results.VERIFY:
                document, _ = manifest_module.load(record.manifest)
                claims['korora.counter'] = document.counter
                claims['korora.disks'] = [
                    name[len(base.DISK_PREFIX):] for name in document.items
                    if name.startswith(base.DISK_PREFIX)]
            token = self._authorization(moved, host, action, nonce, claims)
            return self._answer(host, nonce, moved, claims={
                'korora.authorization': token})
        return self._run(host, nonce, step, record,
                         abort=action == results.TRANSFER)

    # 4. The source's manifest.

    def measured(self, migration_uuid, source, signed_manifest, nonce):
        """MEASURED; a manifest that does not hold (not signed by the
        source's AK for the purpose, not bound to this migration, a
        replayed counter) is evidence against what the destination holds:
        QUARANTINED."""
        try:
            record = self._record(migration_uuid, source, 'source',
                                  states.TRANSFERRING)
        except exception.StepNotProven as error:
            return self._refused(source, nonce, str(error))
        except NOT_RUN as error:
            return self._not_run(source, nonce, error)
        try:
            document = self._check_manifest(record, signed_manifest, source)
        except NOT_RUN as error:
            return self._not_run(source, nonce, error)
        except exception.KororaError as error:
            return self._quarantine_for(record, source, nonce, error)
        try:
            moved = records.transition(
                record.uuid, source, states.MEASURED,
                details={'manifest_sha256': document.digest().hex(),
                         'items': dict(document.items),
                         'counter': document.counter},
                manifest=signed_manifest, source_counter=document.counter,
                expected=states.TRANSFERRING)
        except NOT_RUN as error:
            return self._not_run(source, nonce, error)
        except exception.KororaError as error:
            return self._refused(source, nonce, str(error))
        return self._answer(source, nonce, moved)

    def _check_manifest(self, record, signed_manifest, source):
        document = self._check_document(
            record, signed_manifest, manifest_module.DEPARTURE, source)
        highest = records.highest_committed_counter(record.source_host,
                                                    record.instance_uuid)
        if highest is not None and document.counter <= highest:
            raise exception.StepNotProven(
                'the integrity manifest is bound to counter value %d of '
                '%s, which a committed migration of this instance used '
                'already (replay)' % (document.counter, source))
        return document

    def _quarantine_for(self, record, source, nonce, error):
        """The source's manifest did not hold: QUARANTINED, naming it."""
        reason = ('%s: %s' % (MANIFEST_ITEM, error))[:MAX_REASON]
        try:
            moved = records.transition(record.uuid, source,
                                       states.QUARANTINED,
                                       details={'item': MANIFEST_ITEM},
                                       reason=reason,
                                       expected=states.TRANSFERRING)
        except NOT_RUN as failure:
            return self._not_run(source, nonce, failure)
        except exception.IllegalTransition:
            moved = records.get(record.uuid)    # moved meanwhile
        return self._refused(source, nonce, str(error), moved)

    def _check_document(self, record, text, kind, host):
        """The document in text: of kind, bound to record, signed by
        host's AK for kind's purpose."""
        try:
            document, quote = manifest_module.load(text)
        except exception.ManifestError as error:
            raise exception.StepNotProven(str(error))
        if document.kind != kind:
            raise exception.StepNotProven(
                'a %s measurement was sent where the %s was '
                'expected' % (document.kind, kind))
        found = nonces(record)
        expected = (record.uuid, record.instance_uuid, record.source_host,
                    record.dest_host, found.get('source_nonce'),
                    found.get('dest_nonce'))
        if document.binding()[:6] != expected:
            raise exception.StepNotProven(
                'the %s measurement is not bound to this '
                'migration' % kind)
        try:
            manifest_module.check_signature(
                document, quote, db.host_get(host).ak_public, host)
        except exception.ManifestError as error:
            raise exception.StepNotProven(str(error))
        return document

    # 5. The destination's arrival.

    def arrived(self, migration_uuid, dest, signed_arrival, nonce):
        """VERIFIED, or QUARANTINED naming the first item that differs.
        Without the source's manifest (TRANSFERRING) there is nothing to
        compare: refused, the record stays as it is."""
        try:
            record = records.get(migration_uuid)
            if record.dest_host != dest or record.state != states.MEASURED:
                return self._refused(
                    dest, nonce, 'migration %s (%s to %s) is not waiting '
                    'for its arrival at %s%s'
                    % (record.uuid, record.state, record.dest_host, dest,
                       ': the source has signed no manifest yet'
                       if record.state == states.TRANSFERRING else ''),
                    record)
            try:
                item, reason = self._compare(record, signed_arrival, dest)
            except NOT_RUN:
                raise
            except exception.KororaError as error:
                item, reason = MANIFEST_ITEM, str(error)
            if item is None:
                moved = records.transition(record.uuid, dest,
                                           states.VERIFIED,
                                           details={'items': reason},
                                           expected=states.MEASURED)
                return self._answer(dest, nonce, moved)
            moved = records.transition(record.uuid, dest, states.QUARANTINED,
                                       details={'item': item},
                                       reason=('%s: %s' % (item, reason))[
                                           :MAX_REASON],
                                       expected=states.MEASURED)
        except exception.MigrationNotFound:
            return self._refused(dest, nonce, 'no migration %s is recorded'
                                 % migration_uuid)
        except NOT_RUN as error:
            return self._not_run(dest, nonce, error)
        return self._answer(dest, nonce, moved, reasons=[reason],
                            claims={'korora.item': item})

    def _compare(self, record, signed_arrival, dest):
        """(None, items) when the arrival equals the manifest, else
        (item, reason)."""
        departed, _ = manifest_module.load(record.manifest)
        try:
            arrived = self._check_document(record, signed_arrival,
                                           manifest_module.ARRIVAL, dest)
        except exception.StepNotProven as error:
            return base.VTPM_STATE, str(error)
        if arrived.counter != departed.counter:
            return MANIFEST_ITEM, ('the arrival is bound to counter %s, the '
                                   'manifest to %s' % (arrived.counter,
                                                       departed.counter))
        differing = base.compare(departed.items, arrived.items)
        if differing:
            others = ('; so do %s' % ', '.join(differing[1:])
                      if len(differing) > 1 else '')
            return differing[0], ('differs from what %s measured when the '
                                  'transfer ended%s'
                                  % (record.source_host, others))
        return None, dict(arrived.items)

    # 6. Commit, abort, quarantine.

    def committed(self, migration_uuid, source, counter, nonce):
        try:
            record = self._record(migration_uuid, source, 'source',
                                  states.VERIFIED)
            if not isinstance(counter, int) or counter <= (
                    record.source_counter or 0):
                raise exception.StepNotProven(
                    'the counter of %s did not advance past the '
                    'manifest\'s %s' % (source,
                                        record.source_counter))
            moved = records.transition(record.uuid, source,
                                       states.COMMITTED,
                                       details={'counter': counter},
                                       expected=states.VERIFIED)
        except NOT_RUN as error:
            return self._not_run(source, nonce, error)
        except exception.KororaError as error:
            return self._refused(source, nonce, str(error))
        return self._answer(source, nonce, moved)

    def abort(self, migration_uuid, host, reason, nonce):
        try:
            record = records.get(migration_uuid)
            if host not in (record.source_host, record.dest_host):
                return self._refused(host, nonce, '%s takes no part in '
                                     'migration %s' % (host, migration_uuid),
                                     record)
            if not states.is_final(record.state):
                try:
                    records.transition(record.uuid, host, states.ABORTED,
                                       reason=str(reason)[:MAX_REASON],
                                       expected=record.state)
                except exception.IllegalTransition as error:
                    LOG.info('migration %s not aborted: %s', record.uuid,
                             error)
            return self._answer(host, nonce, records.get(record.uuid))
        except exception.MigrationNotFound:
            return self._refused(host, nonce, 'no migration %s is recorded'
                                 % migration_uuid)
        except NOT_RUN as error:
            return self._not_run(host, nonce, error)

    def show(self, migration_uuid, host, nonce):
        """The record of a migration host takes part in, as it is now,
        final or not; it changes nothing."""
        try:
            record = records.get(migration_uuid)
        except exception.MigrationNotFound:
            return self._refused(host, nonce, 'no migration %s is recorded'
                                 % migration_uuid)
        except NOT_RUN as error:
            return self._not_run(host, nonce, error)
        if host not in (record.source_host, record.dest_host):
            return self._refused(host, nonce, '%s takes no part in '
                                 'migration %s' % (host, migration_uuid))
        return self._answer(host, nonce, record)

    def quarantine(self, migration_uuid, host, item, reason, nonce):
        """The destination holds an instance it could not check."""
        try:
            record = records.get(migration_uuid)
            if record.dest_host != host:
                raise exception.StepNotProven(
                    '%s is not the destination of migration %s'
                    % (host, migration_uuid))
            if not states.is_final(record.state):
                records.transition(record.uuid, host, states.QUARANTINED,
                                   details={'item': str(item)[:64]},
                                   reason=('%s: %s' % (item, reason))[
                                       :MAX_REASON])
            return self._answer(host, nonce, records.get(record.uuid))
        except NOT_RUN as error:
            return self._not_run(host, nonce, error)
        except exception.KororaError as error:
            return self._refused(host, nonce, str(error))

    # Recovery of what the verifier alone can decide.

    def recover_stale(self):
        """Abort the records that never got past KEY_CERTIFIED and have
        not moved for [korora] stale_migration_age seconds (nothing had
        left the source), and warn of later ones that have not moved for
        stale_migration_age (only the computes know where their instance
        runs). Returns the aborted records' uuids; safe on several
        workers at once."""
        limit = self.conf.korora.stale_migration_age
        aborted = []
        for record in records.in_flight():
            age = records.age(record)
            if age < limit:
                continue
            if record.state not in SUPERSEDABLE:
                LOG.warning('recovery: migration %s of instance %s (%s to '
                            '%s) has been %s for %d s; the compute hosts\' '
                            'recovery finishes it', record.uuid,
                            record.instance_uuid, record.source_host,
                            record.dest_host, record.state, age)
                continue
            try:
                records.transition(
                    record.uuid, audit_log.VERIFIER, states.ABORTED,
                    reason='no step for %d s after %s (verifier recovery)'
                    % (age, record.state), expected=record.state)
            except exception.IllegalTransition:
                continue    # moved meanwhile, or another worker aborted it
            LOG.info('recovery: migration %s of instance %s aborted: it '
                     'stayed %s for %d s', record.uuid,
                     record.instance_uuid, record.state, age)
            aborted.append(record.uuid)
        return aborted

    def in_flight(self, host, instance_uuid, nonce):
        """The migrations host takes part in that are not final (of one
        instance, if given), oldest first. Without an instance, also the
        migrations to host aborted within [korora] stale_migration_age
        (korora.abandoned): its recovery removes what their transfers
        left there, since an abort by the source cannot."""
        found = (records.in_flight_for_instance(instance_uuid)
                 if instance_uuid else records.in_flight())
        claims = {'korora.migrations': [
            migration_claims(record) for record in found
            if host in (record.source_host, record.dest_host)]}
        if not instance_uuid:
            claims['korora.abandoned'] = [
                migration_claims(record) for record in
                records.aborted_recently(
                    host, self.conf.korora.stale_migration_age)]
        return self._answer(host, nonce, claims=claims)
