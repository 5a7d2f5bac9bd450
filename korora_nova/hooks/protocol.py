"""One Kororā live migration, step by step, as a compute host runs it.

The hooks in Nova's live-migration path (korora_nova.hooks.driver) and
a restarted compute's recovery (korora_nova.hooks.recovery) both drive
this object; no step is written twice. It reads in the order a
migration runs::

    destination  request            the local vTPM manager signs the
                                    request; the verifier checks it (its
                                    quote attests the destination), opens
                                    the record, and at the same time
                                    attests the source and has the
                                    destination certify its key for this
                                    migration
    source       attest_destination the verifier's answer: the certified
                                    key (or, if it could not be certified
                                    with the request, the destination
                                    attested afresh and its key certified
                                    now)
    source       seal               the vTPM secret, sealed to that key
    destination  open_transfer      the verifier authorizes the transfer;
                                    the local vTPM manager opens the secret
                                    and approves the incoming domain
    source       measure            the local vTPM manager measures and
                                    signs the manifest; the verifier checks
                                    it
    destination  verify_arrival     the local vTPM manager measures and
                                    signs the arrival; the verifier compares
                                    (verified, or quarantined)
    source       commit             the local vTPM manager advances the
                                    counter; the verifier records the commit

This host holds no database credentials and believes only answers the
verifier signed (its keys pinned in [korora] verifier_public_keys),
bound to the nonce of the call that asked and to the migration; the
local vTPM manager is reached over the host's root-only socket, never
the bus.

A call that could not run (the verifier, the broker or the local vTPM
manager unreachable, the verifier's database busy: exception.StepNotRun,
exception.TPMConnectionError) is tried again (korora_nova.hooks.retry);
a step whose answer was lost on the way back is found done by the
record's state, not run twice.
"""

import base64
import binascii
import dataclasses

from korora_nova.attestation import results
from korora_nova import exception
from korora_nova.hooks import handover
from korora_nova.hooks import retry
from korora_nova.rpcapi import verifier as verifier_rpcapi
from korora_nova.vtpm_manager import local_client


@dataclasses.dataclass(frozen=True)
class MigrationRecord:
    """A migration as the verifier's signed answer describes it."""
    uuid: str
    instance_uuid: str
    source_host: str
    dest_host: str
    state: str
    source_nonce: str = None
    dest_nonce: str = None
    # Seconds since the record last moved, by the verifier's clock.
    age: float = None

    @classmethod
    def from_claims(cls, claims):
        if not isinstance(claims, dict):
            raise exception.StepRefused(
                'the verifier\'s answer names no migration')
        try:
            return cls(**{field.name: claims.get(field.name)
                          for field in dataclasses.fields(cls)})
        except TypeError as error:
            raise exception.StepRefused('the verifier\'s answer describes the '
                                        'migration badly: %s' % error)


@dataclasses.dataclass(frozen=True)
class CertifiedKey:
    """The destination's key for one migration, as the verifier checked
    it (handover.seal_secret seals to it)."""
    public: bytes
    unique: bytes


def for_host(host, conf, trusted_keys=None, local_manager=None):
    """The steps as host runs them: the verifier on the bus, believed
    with the keys pinned in [korora] verifier_public_keys (read now
    unless given), and host's vTPM manager on its root-only socket
    (unless another is given)."""
    if trusted_keys is None:
        trusted_keys = results.TrustedKeys.load(
            conf.korora.verifier_public_keys)
    if local_manager is None:
        local_manager = local_client.LocalManager(
            conf.korora.libvirt_hook_socket,
            conf.korora.migration_step_timeout)
    return MigrationProtocol(host, verifier_rpcapi.VerifierAPI(),
                             trusted_keys, local_manager)


class MigrationProtocol:
    """The steps of host; see the module docstring for their order."""

    def __init__(self, host, verifier_api, trusted_keys, local_manager):
        self.host = host
        self.verifier_api = verifier_api
        self.trusted_keys = trusted_keys
        self.local_manager = local_manager

    # 1. destination

    def request(self, instance_uuid, source):
        """The new record, once the verifier checked this host's signed
        request and found source trusted."""
        def attempt():
            # A request is used once: each try is signed afresh.
            signed_request = self.local_manager.sign_request(instance_uuid,
                                                             source)
            return self._signed_once(source, 'migration_request',
                                     instance_uuid=instance_uuid,
                                     source=source, dest=self.host,
                                     signed_request=signed_request)
        claims = self._affirm(source, retry.retried(
            'migration_request (%s)' % self.host, attempt))
        return self._record(claims, instance_uuid)

    # 2. source

    def attest_destination(self, record):
        """(record, CertifiedKey) once the verifier found the
        destination trusted and certified its key."""
        claims = self._affirmed(record.dest_host,
                                'migration_attest_destination',
                                migration_uuid=record.uuid, source=self.host)
        key = claims.get('korora.key') or {}
        try:
            certified = CertifiedKey(
                base64.b64decode(key.get('public', ''), validate=True),
                base64.b64decode(key.get('unique', ''), validate=True))
        except (binascii.Error, TypeError, ValueError, AttributeError):
            raise exception.StepRefused(
                'the verifier\'s answer carries no usable '
                'certified key')
        return self._record(claims, record.instance_uuid), certified

    def seal(self, record, key, secret):
        return handover.seal_secret(key, secret, handover.binding(record))

    # 3. destination

    def open_transfer(self, record, envelope):
        """The vTPM secret in envelope (None without one), opened by this
        host's TPM; the incoming domain is approved from now on."""
        claims, token = self._authorization(record, results.TRANSFER)
        fields = handover.parse(envelope) if envelope else None
        data_key = self._local(
            'open_transfer', token,
            handover.duplicate_fields(fields) if fields else None)
        moved = self._record(claims, record.instance_uuid)
        if fields is None:
            return moved, None
        return moved, handover.open_with(data_key, fields,
                                         handover.binding(moved))

    # 4. source

    def measure(self, record, secret, block_migration):
        """MEASURED: this host's vTPM manager measured and signed."""
        try:
            _, token = self._authorization(record, results.MEASURE)
            signed = self._local('sign_manifest', token, secret,
                                 block_migration)
            claims = self._affirmed(self.host, 'migration_measured',
                                    migration_uuid=record.uuid,
                                    source=self.host, signed_manifest=signed)
        except exception.StepRefused as refusal:
            return self._moved_already(record, 'MEASURED', refusal)
        return self._record(claims, record.instance_uuid)

    # 5. destination

    def verify_arrival(self, record, secret):
        """VERIFIED, or Quarantined with what differs. StepRefused while
        the source has proven no manifest (TRANSFERRING): there is
        nothing to compare yet, which says nothing about the instance."""
        if record.state == 'TRANSFERRING':
            raise exception.StepRefused(
                '%s has signed no integrity manifest of migration %s yet'
                % (record.source_host, record.uuid))
        try:
            _, token = self._authorization(record, results.VERIFY)
        except exception.StepRefused as refusal:
            return self._moved_already(record, 'VERIFIED', refusal)
        try:
            signed = self._local('measure_arrival', token, secret)
        except exception.MeasurementFailed as failure:
            # What arrived cannot be measured: that is a finding.
            moved = self.quarantine(record.uuid, failure.item, str(failure))
            raise exception.Quarantined(failure.item, str(failure), moved)
        claims = self._signed(self.host, 'migration_arrived',
                              migration_uuid=record.uuid, dest=self.host,
                              signed_arrival=signed)
        moved = self._record(claims, record.instance_uuid)
        affirmed, reasons = results.host_status(claims, self.host)
        if moved.state == 'QUARANTINED':
            raise exception.Quarantined(
                str(claims.get('korora.item') or 'manifest'),
                '; '.join(reasons), moved)
        if not affirmed or moved.state != 'VERIFIED':
            refusal = exception.StepRefused(
                '; '.join(reasons) or 'migration %s is %s'
                % (moved.uuid, moved.state))
            return self._moved_already(record, 'VERIFIED', refusal)
        return moved

    # 6. source

    def commit(self, record):
        """COMMITTED: the counter advanced, the verifier recorded it."""
        _, token = self._authorization(record, results.COMMIT)
        # Once per migration: a retried commit gets the first advance.
        counter = self._local('advance_counter', token)
        claims = self._affirmed(self.host, 'migration_committed',
                                migration_uuid=record.uuid,
                                source=self.host, counter=counter)
        return self._record(claims, record.instance_uuid)

    # Either host

    def abort(self, migration_uuid, reason):
        """The record after the abort (final states stay as they are)."""
        claims = self._signed(self.host, 'migration_abort',
                              migration_uuid=migration_uuid, host=self.host,
                              reason=str(reason))
        return MigrationRecord.from_claims(claims.get('korora.migration'))

    def quarantine(self, migration_uuid, item, reason):
        claims = self._signed(self.host, 'migration_quarantine',
                              migration_uuid=migration_uuid, host=self.host,
                              item=item, reason=str(reason))
        return MigrationRecord.from_claims(claims.get('korora.migration'))

    def show(self, record):
        """The verifier's record of this host's migration now, in
        flight or final; nothing is written."""
        if not self.verifier_api.can_send_step('migration_show'):
            return self._shown_by_a_1_5_verifier(record)
        claims = self._affirmed(self.host, 'migration_show',
                                migration_uuid=record.uuid, host=self.host)
        shown = self._record(claims, record.instance_uuid)
        if shown.uuid != record.uuid:
            raise exception.StepRefused(
                'the verifier\'s answer is about migration %s, not %s'
                % (shown.uuid, record.uuid))
        return shown

    def _shown_by_a_1_5_verifier(self, record):
        """show, from a verifier pinned below RPC API 1.6: the record
        in flight, else the answer to an abort, which leaves a final
        record as it is (no longer listed means final). Goes when 1.5
        verifiers are no longer supported."""
        for found in self.in_flight(record.instance_uuid):
            if found.uuid == record.uuid:
                return found
        return self.abort(record.uuid, 'the arrival was not verified')

    def in_flight(self, instance_uuid=None):
        """This host's migrations not final, oldest first."""
        return self._listed(instance_uuid, 'korora.migrations')

    def abandoned(self):
        """The migrations to this host aborted lately (what their
        transfers left here may need removing)."""
        return self._listed(None, 'korora.abandoned')

    def _listed(self, instance_uuid, claim):
        claims = self._affirmed(self.host, 'migrations_in_flight',
                                host=self.host, instance_uuid=instance_uuid)
        found = claims.get(claim)
        if not isinstance(found, list):
            raise exception.StepRefused(
                'the verifier\'s answer lists no migrations')
        return [MigrationRecord.from_claims(item) for item in found]

    # What every step stands on

    def _signed(self, subject, method, **arguments):
        """_signed_once, asked again (with a fresh nonce) while the call
        could not run."""
        return retry.retried(
            '%s (%s)' % (method, self.host),
            lambda: self._signed_once(subject, method, **arguments))

    def _signed_once(self, subject, method, **arguments):
        """The claims of the verifier's answer to method, checked: signed
        by a pinned key, unexpired, about subject, bound to our nonce.
        StepNotRun when the verifier's signed answer says it could not
        run the step (korora.retry)."""
        nonce, token = self.verifier_api.migration_step(method, **arguments)
        try:
            claims = self.trusted_keys.verify(token, results.RESULT,
                                              subject=subject, nonce=nonce)
        except exception.SignedResultError as error:
            claims = self._not_run_for_me(token, nonce)
            if claims is None:
                raise exception.StepRefused('the answer to %s is not '
                                            'believed: %s' % (method, error))
        if claims.get(results.RETRY_CLAIM) is True:
            _, reasons = results.host_status(claims, subject)
            raise exception.StepNotRun(
                reason='the verifier could not run %s: %s'
                % (method, '; '.join(reasons)))
        return claims

    def _not_run_for_me(self, token, nonce):
        """The claims of a "could not run" answer about this host, or
        None: a verifier that cannot read the record cannot tell whom
        else the answer is about, and a retry is all it grants."""
        try:
            claims = self.trusted_keys.verify(token, results.RESULT,
                                              subject=self.host, nonce=nonce)
        except exception.SignedResultError:
            return None
        return claims if claims.get(results.RETRY_CLAIM) is True else None

    def _local(self, method, *arguments):
        """This host's vTPM manager's answer to method, asked again while
        the manager cannot be reached (restarting, say)."""
        return retry.retried(
            'vTPM manager call %s on %s' % (method, self.host),
            lambda: getattr(self.local_manager, method)(*arguments))

    def _moved_already(self, record, state, refusal):
        """After refusal: the record, if it is in state already (a try
        whose answer was lost did the step); else refusal."""
        try:
            found = self.in_flight(record.instance_uuid)
        except exception.KororaError:
            raise refusal
        for moved in found:
            if moved.uuid == record.uuid and moved.state == state:
                return moved
        raise refusal

    def _affirmed(self, subject, method, **arguments):
        return self._affirm(subject,
                            self._signed(subject, method, **arguments))

    @staticmethod
    def _affirm(subject, claims):
        """claims, if they affirm subject; else StepRefused with the
        verifier's reasons."""
        affirmed, reasons = results.host_status(claims, subject)
        if not affirmed:
            raise exception.StepRefused(
                '; '.join(reasons) or 'refused by the verifier')
        return claims

    def _authorization(self, record, action):
        """(claims, the authorization token for this host's manager)."""
        claims = self._affirmed(self.host, 'migration_authorize',
                                migration_uuid=record.uuid, host=self.host,
                                action=action)
        token = claims.get('korora.authorization')
        if not isinstance(token, str):
            raise exception.StepRefused(
                'the verifier sent no authorization for %s'
                % action)
        return claims, token

    def _record(self, claims, instance_uuid):
        record = MigrationRecord.from_claims(claims.get('korora.migration'))
        if record.instance_uuid != instance_uuid:
            raise exception.StepRefused(
                'the verifier\'s answer is about instance %s, '
                'not %s' % (record.instance_uuid,
                            instance_uuid))
        return record
