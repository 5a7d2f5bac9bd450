"""The vTPM manager: the host TPM's only user.

Every TPM command of the host's korora services goes through its one
TPMConnection. It answers two kinds of callers:

- on the message bus (RPC API 2.0), the verifier: identity, credential
  activation and quotes, each only for a challenge the verifier signed,
  and the certification of a per-migration key, only with the
  verifier's authorization (korora_nova.vtpm_manager.authorization);
- on the host's root-only UNIX socket (korora_nova.vtpm_manager.
  hook_server), nova-compute and the libvirt hook of this host: open
  the sealed vTPM secret, measure and sign the instance's state, advance
  the counter, each only with the verifier's authorization, and admit
  an incoming domain that an authorization approved.

It signs only what it measured itself, under the purpose label of the
call (korora_nova.attestation.purpose): no caller hands it a value to
sign as is.
"""

import base64
import collections
import os
import threading
import time

import oslo_messaging as messaging
from oslo_log import log as logging

from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import purpose
from korora_nova import exception
from korora_nova.hypervisors import file_backend
from korora_nova.hypervisors import libvirt_backend
from korora_nova.migration import manifest as manifest_module
from korora_nova.migration import request as request_module
from korora_nova import rpc
from korora_nova.tpm import attestation_key
from korora_nova.tpm import certify
from korora_nova.tpm import connection as tpm_connection
from korora_nova.tpm import duplication
from korora_nova.tpm import endorsement
from korora_nova.tpm import nv_counter
from korora_nova.tpm import quote
from korora_nova.rpcapi import verifier as verifier_rpcapi
from korora_nova.vtpm_manager import advanced_counters
from korora_nova.vtpm_manager import authorization
from korora_nova.vtpm_manager import self_measurement

LOG = logging.getLogger(__name__)

# Per-migration keys not yet used: at most this many, for this long.
# Only the verifier's authorizations make them, one per migration.
MAX_MIGRATION_KEYS = 256
# Migrations whose counter advance is remembered (state_path), so that a
# retried commit of one of them does not advance the counter again.
ADVANCED_FILE = 'advanced-counters.json'
MAX_ADVANCED = 1024
MIGRATION_KEY_LIFETIME = 3600.0
# Seconds a certified key stays loaded waiting for its secret.
KEY_KEPT = 60.0
MAX_SECRET = 1024
MAX_DISKS = 64
# Storage keys kept loaded at once (the one made ahead, or the one
# certified and waiting for its secret). A TPM without a resource manager
# (swtpm) holds three objects, and signing with the persistent AK takes
# one: with one key kept, the next migration's key can still be made and
# certified while it waits (a key generation on that migration's path).
MAX_LOADED_KEYS = 1
# Background TPM work (the PCR watch, flushes, the next key) pauses this
# many seconds after any migration call: it never delays a migration's
# commands, and a migration's quotes compare the PCRs themselves.
QUIET_AFTER_MIGRATION = 10.0

# An incoming migration an authorization approved (for the libvirt hook).
Approval = collections.namedtuple(
    'Approval', 'uuid instance_uuid source_host dest_host state until')
# A migration's certified key: its unique, when it was made, and its
# certify.LoadedKey while it stays loaded (None once flushed).
MigrationKey = collections.namedtuple('MigrationKey', 'unique made loaded')


def state_backend_from_conf(conf, host):
    """The instance-state backend this host's manager measures with."""
    if conf.korora.instance_state_backend == 'files':
        return file_backend.FileStateBackend(conf.korora.instance_state_root,
                                             host)
    return libvirt_backend.LibvirtStateBackend(conf.korora.libvirt_uri)


class VTPMManager:
    """The host TPM's owner; BusEndpoint serves it on topic [korora]
    manager_topic, server [DEFAULT] host."""

    def __init__(self, conf, host=None, tcti=None, state_path=None,
                 verifier_api=None, state_backend=None, gate=None):
        """host, tcti and state_path default to [DEFAULT] host, [korora]
        tcti and [korora] state_path; state_backend to [korora]
        instance_state_backend; gate to the verifier keys of [korora]
        verifier_public_keys."""
        self.conf = conf
        self.host = host or conf.host
        self.state_path = state_path or conf.korora.state_path
        self.connection = tpm_connection.TPMConnection(
            tcti or conf.korora.tcti)
        self.ak = attestation_key.AttestationKey(
            self.connection, conf.korora.ak_algorithm,
            int(conf.korora.ak_persistent_handle, 0))
        self.selection = pcr_values.parse_selection(conf.korora.pcr_selection)
        self.verifier_api = verifier_api or verifier_rpcapi.VerifierAPI()
        self.counter = nv_counter.MonotonicCounter(
            self.connection, int(conf.korora.migration_counter_index, 0))
        self._stop = threading.Event()
        # Set to run the background work now (stop, or a migration's
        # last call on this host).
        self._wake = threading.Event()
        self._background = None
        # The attested PCRs as last read, and the TPM's PCR update
        # counter then.
        self._last_values = None
        self._update_counter = None
        self._uncounted = None
        self._values_lock = threading.Lock()
        self._quiet_until = 0.0
        self.gate = gate or authorization.Gate.from_conf(conf, self.host)
        self.state_backend = state_backend or state_backend_from_conf(
            conf, self.host)
        # migration uuid -> MigrationKey, not yet used.
        self._migration_keys = {}
        # The next migration's key, made ahead; LoadedKeys to flush.
        self._spare_key = None
        self._to_release = []
        self._keys_lock = threading.Lock()
        # instance uuid -> Approval of its incoming migration.
        self._approvals = {}
        # migration uuid -> the counter value its commit advanced to.
        self._advanced = advanced_counters.load(
            os.path.join(self.state_path, ADVANCED_FILE))
        self._counter_lock = threading.Lock()
        # Xen: the vtpmmgr statement last measured (self_measurement).
        self._vtpmmgr = None
        self._vtpmmgr_lock = threading.Lock()

    # Life cycle

    def start(self):
        self._vtpmmgr = self_measurement.vtpmmgr_statement(self.conf)
        self_measurement.measure_once_per_boot(
            self.connection, self.ak, self.conf,
            os.path.join(self.state_path, 'self-measurement'),
            vtpmmgr=self._vtpmmgr)
        self._update_counter = quote.pcr_update_counter(self.connection,
                                                        self.selection)
        self._uncounted = quote.uncounted_pcrs(self.connection,
                                               self.selection)
        self._last_values = quote.read_pcrs(self.connection, self.selection)
        # What the first migration would otherwise wait for: the
        # counter's handle, and a key made ahead.
        self.counter.read()
        self._make_spare_key()
        self._stop.clear()
        self._wake.clear()
        self._background = threading.Thread(target=self._background_work,
                                            name='korora-tpm-background',
                                            daemon=True)
        self._background.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._background is not None:
            self._background.join(timeout=5)
        self.connection.close()

    # Background work: never in a migration's way

    def _background_work(self):
        """The PCR watch, the flushes of used keys and the next
        migration's key, each only while the TPM is idle (TPMBusy: not
        now) and not within QUIET_AFTER_MIGRATION of a migration call,
        unless that call was the migration's last on this host."""
        while not self._stop.is_set():
            self._wake.wait(self.conf.korora.pcr_watch_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            if time.monotonic() < self._quiet_until:
                continue
            try:
                self._watch_pcrs()
                self._release_keys()
                self._make_spare_key()
            except exception.TPMBusy:
                continue
            except exception.KororaError as error:
                LOG.warning('%s: background TPM work failed: %s', self.host,
                            error)

    def _quiet(self):
        self._quiet_until = time.monotonic() + QUIET_AFTER_MIGRATION

    def _migration_done_here(self):
        """The destination measured the arrival: its TPM has nothing more
        to do for the migration (the source commits on its own), so the
        used key is flushed and the next one made now, not after the
        quiet time, which would leave the next migration without it."""
        self._quiet_until = 0.0
        self._wake.set()

    def _watch_pcrs(self):
        """Tell the verifier at once when an attested PCR changes: one
        TPM command (the update counter) unless one did, or unless the
        selection has PCRs the counter does not count."""
        counter = quote.pcr_update_counter(self.connection, self.selection,
                                           wait=False)
        if counter == self._update_counter and not self._uncounted:
            return
        values = quote.read_pcrs(self.connection, self.selection, wait=False)
        self._update_counter = counter
        self._note_values(values)

    def _note_values(self, values):
        """Keep the PCR values last read; report a change to the
        verifier (from the watch, or from a quote that found them)."""
        with self._values_lock:
            last, self._last_values = self._last_values, values
        if values == last:
            return
        changed = sorted('%s:%d' % (bank, index)
                         for bank, pcrs in values.items()
                         for index, value in pcrs.items()
                         if (last or {}).get(bank, {}).get(index) != value)
        LOG.warning('%s: PCRs %s changed; asking the verifier to attest '
                    'this host now', self.host, ', '.join(changed))
        self.verifier_api.pcrs_changed(self.host)

    def _release_keys(self):
        with self._keys_lock:
            self._expire_keys()
            now = time.monotonic()
            for migration_uuid, key in list(self._migration_keys.items()):
                if key.loaded is not None and now - key.made > KEY_KEPT:
                    # Its migration may never come (refused, aborted):
                    # recreated from its unique if it does.
                    self._to_release.append(key.loaded)
                    self._migration_keys[migration_uuid] = key._replace(
                        loaded=None)
            released, self._to_release = self._to_release, []
        for number, key in enumerate(released):
            try:
                certify.release_key(self.connection, key, wait=False)
            except exception.TPMBusy:
                with self._keys_lock:
                    self._to_release.extend(released[number:])
                raise

    def _loaded_keys(self):
        return (len(self._to_release) + (self._spare_key is not None)
                + sum(1 for key in self._migration_keys.values()
                      if key.loaded is not None))

    def _make_spare_key(self):
        """Make the next migration's key ahead of it (a key generation
        takes a discrete TPM 150 ms or more)."""
        with self._keys_lock:
            if self._spare_key is not None or (
                    self._loaded_keys() >= MAX_LOADED_KEYS):
                return
        made = certify.create_loaded_key(self.connection, wait=False)
        with self._keys_lock:
            if self._spare_key is None:
                self._spare_key = made
                return
        certify.release_key(self.connection, made)

    # RPC API 2.0 (the message bus): the verifier's calls

    def get_identity(self, ctxt):
        """Public facts: the EK, its certificate and the AK public key."""
        ek = endorsement.read_endorsement(self.connection,
                                          self.conf.korora.ek_types)
        return {'ek_type': ek.ek_type,
                'ek_certificate': rpc.encode(ek.certificate),
                'ek_public': rpc.encode(ek.public),
                'ak_public': rpc.encode(self.ak.public)}

    def activate_credential(self, ctxt, challenge, credential_blob,
                            encrypted_secret):
        self.gate.enrollment(challenge)
        secret = self.ak.activate_credential(
            self.conf.korora.ek_types,
            rpc.decode(credential_blob, 'credential blob', 1024),
            rpc.decode(encrypted_secret, 'encrypted secret', 1024))
        return {'secret': rpc.encode(secret)}

    def _measure_vtpmmgr(self):
        """Xen: vtpmmgr can be replaced after we start; measure a change
        before the quote, or refuse to quote when it cannot be told."""
        if not self.conf.korora.xen_vtpmmgr_image:
            return
        with self._vtpmmgr_lock:
            try:
                now = self_measurement.vtpmmgr_statement(self.conf)
            except exception.XenVTPMMgrError:
                # oslo.log appends the exception's message.
                LOG.error('%s: refusing to quote', self.host)
                raise
            if now != self._vtpmmgr:
                self_measurement.measure_vtpmmgr_change(
                    self.connection, self.conf, now)
                self._vtpmmgr = now

    def _quote(self, label, payload):
        """One TPM command while the PCRs are as last read (their values
        are then not read again)."""
        self._measure_vtpmmgr()
        made = quote.quote(self.connection, self.ak, self.selection,
                           purpose.qualifying_data(label, payload),
                           known_values=self._last_values)
        self._note_values(made.pcr_values)
        return made

    def attest(self, ctxt, challenge):
        """A quote over the verifier's nonce, for the purpose its signed
        challenge names."""
        nonce, label = self.gate.challenge(challenge, 'attest')
        made = self._quote(label, nonce)
        return {'message': rpc.encode(made.message),
                'signature': rpc.encode(made.signature),
                'pcr_values': pcr_values.to_json(made.pcr_values)}

    def certify_migration_key(self, ctxt, authorization_token):
        """A fresh storage key for one migration, certified by the AK over
        the verifier's nonce. It opens one sealed secret, then is gone.
        One key per migration: a second authorization (the verifier's
        retry after its answer was lost) certifies the same key again."""
        claims = self.gate.authorize(authorization_token,
                                     authorization.CERTIFY_KEY)
        migration_uuid = claims['korora.migration']['uuid']
        nonce = self.gate.nonce_of(claims, authorization.CERTIFY_KEY)
        qualifying_data = purpose.qualifying_data(purpose.CERTIFY, nonce)
        self._quiet()
        with self._keys_lock:
            self._expire_keys()
            known = self._migration_keys.get(migration_uuid)
            if known is not None:
                LOG.info('%s: the key of migration %s certified again',
                         self.host, migration_uuid)
                key, loaded = self._certify(qualifying_data, known.loaded,
                                            known.unique)
                made = known.made
            else:
                if len(self._migration_keys) >= MAX_MIGRATION_KEYS:
                    raise exception.TPMError(
                        '%s: %d migration keys are waiting to be used; '
                        'refusing another' % (self.host, MAX_MIGRATION_KEYS))
                spare, self._spare_key = self._spare_key, None
                key, loaded = self._certify(qualifying_data, spare)
                made = time.monotonic()
            self._migration_keys[migration_uuid] = MigrationKey(
                key.unique, made, loaded)
        return {'public': rpc.encode(key.public),
                'attestation': rpc.encode(key.attestation),
                'signature': rpc.encode(key.signature),
                'unique': rpc.encode(key.unique)}

    def _certify(self, qualifying_data, loaded, unique=None):
        """(CertifiedKey, the LoadedKey kept or None), under _keys_lock:
        the loaded key in one TPM command; else the key of unique (a new
        one without), made now and kept loaded while there is room."""
        if loaded is None and (unique is not None or self._loaded_keys()
                               >= MAX_LOADED_KEYS):
            return certify.create_certified_storage_key(
                self.connection, self.ak, qualifying_data, unique), None
        if loaded is None:
            loaded = certify.create_loaded_key(self.connection)
        return certify.certify_loaded_key(self.connection, self.ak,
                                          qualifying_data, loaded)

    def _expire_keys(self):
        now = time.monotonic()
        for migration_uuid, key in list(self._migration_keys.items()):
            if now - key.made > MIGRATION_KEY_LIFETIME:
                del self._migration_keys[migration_uuid]
                if key.loaded is not None:
                    self._to_release.append(key.loaded)

    # The host's UNIX socket: nova-compute of this host

    def open_transfer(self, authorization_token, envelope=None):
        """Approve the incoming domain of the authorized migration and,
        if its vTPM secret was sealed, import the data key with the
        migration key and return it (bytes; it never leaves the host)."""
        claims = self.gate.authorize(authorization_token,
                                     authorization.TRANSFER)
        self._quiet()
        migration = claims['korora.migration']
        data_key = None
        if envelope is not None:
            data_key = self._open_envelope(migration['uuid'], claims,
                                           envelope)
        self._approvals[migration['instance_uuid']] = Approval(
            migration['uuid'], migration['instance_uuid'],
            migration['source_host'], migration['dest_host'],
            'TRANSFERRING', float(claims['exp']))
        return data_key

    def _open_envelope(self, migration_uuid, claims, envelope):
        if not isinstance(envelope, dict):
            raise exception.EvidenceError(
                '%s: the sealed secret\'s fields are not an object'
                % self.host)
        unique = rpc.decode(envelope.get('unique'), 'key unique',
                            certify.UNIQUE_SIZE)
        if base64.b64encode(unique).decode('ascii') != claims.get(
                'korora.key_unique'):
            raise exception.NotAuthorized(
                '%s: the secret is sealed to another key than the one the '
                'verifier certified for migration %s' % (self.host,
                                                         migration_uuid))
        duplicated = duplication.Duplicate(
            rpc.decode(envelope.get('public'), 'duplicated object',
                       evidence.MAX_PUBLIC_SIZE),
            rpc.decode(envelope.get('duplicate'), 'duplicate',
                       duplication.MAX_DUPLICATE_SIZE),
            rpc.decode(envelope.get('seed'), 'encrypted seed',
                       duplication.MAX_SEED_SIZE))
        with self._keys_lock:
            key = self._migration_keys.pop(migration_uuid, None)
        try:
            if key is None or key.unique != unique or (
                    time.monotonic() - key.made > MIGRATION_KEY_LIFETIME):
                raise exception.EvidenceError(
                    '%s: the secret is sealed to a key this vTPM manager did '
                    'not certify for migration %s, used already or let '
                    'expire' % (self.host, migration_uuid))
            return duplication.unwrap(self.connection, unique, duplicated,
                                      key.loaded)
        finally:
            if key is not None and key.loaded is not None:
                with self._keys_lock:
                    # Flushed in the background, after the migration.
                    self._to_release.append(key.loaded)

    def incoming(self, instance_uuid):
        """The approved incoming migrations of the instance (for the
        libvirt hook's admission), unexpired."""
        approval = self._approvals.get(instance_uuid)
        if approval is None:
            return []
        if approval.until < time.time():
            self._approvals.pop(instance_uuid, None)
            return []
        return [approval]

    def sign_request(self, instance_uuid, source_host):
        """This host's request to receive instance from source_host,
        signed here: without it the verifier opens no record, and so
        certifies no key of this host for the migration."""
        for name, value, limit in (('instance', instance_uuid, 36),
                                   ('source host', source_host, 255)):
            if not isinstance(value, str) or not 0 < len(value) <= limit:
                raise exception.EvidenceError('%s: the request names no '
                                              'usable %s' % (self.host, name))
        if source_host == self.host:
            raise exception.EvidenceError('%s: an instance cannot migrate to '
                                          'its own host' % self.host)
        self._quiet()
        request = request_module.new(instance_uuid, source_host, self.host)
        return request_module.signed_text(
            request, self._quote(purpose.REQUEST, request.digest()))

    def sign_manifest(self, authorization_token, vtpm_secret=None,
                      block_migration=False):
        """The source's manifest: measured here, signed here."""
        claims = self.gate.authorize(authorization_token,
                                     authorization.MEASURE)
        self._quiet()
        migration = claims['korora.migration']
        items = self.state_backend.measure(
            migration['instance_uuid'], block_migration=bool(block_migration),
            vtpm_secret=_secret(vtpm_secret))
        counter = self.counter.read()
        document = manifest_module.for_migration(
            migration, counter, items, manifest_module.DEPARTURE)
        return manifest_module.signed_text(
            document, self._quote(purpose.MANIFEST, document.digest()))

    def measure_arrival(self, authorization_token, vtpm_secret=None):
        """The destination's measurement of what arrived, signed here,
        bound to the manifest's counter and disks the verifier names."""
        claims = self.gate.authorize(authorization_token,
                                     authorization.VERIFY)
        self._quiet()
        migration = claims['korora.migration']
        disks = claims.get('korora.disks') or []
        counter = claims.get('korora.counter')
        if not isinstance(disks, list) or len(disks) > MAX_DISKS or not all(
                isinstance(disk, str) for disk in disks):
            raise exception.EvidenceError('%s: the authorization names '
                                          'malformed disks' % self.host)
        items = self.state_backend.measure(
            migration['instance_uuid'], block_migration=bool(disks),
            disk_targets=disks or None, vtpm_secret=_secret(vtpm_secret))
        document = manifest_module.for_migration(
            migration, counter, items, manifest_module.ARRIVAL)
        self._approvals.pop(migration['instance_uuid'], None)
        signed = manifest_module.signed_text(
            document, self._quote(purpose.ARRIVAL, document.digest()))
        self._migration_done_here()
        return signed

    def advance_counter(self, authorization_token):
        """Commit: advance the source's counter (old copies and manifests
        can no longer be replayed), once per migration: a commit retried
        after the verifier did not record it gets the value of the first
        advance, and the counter does not move twice."""
        claims = self.gate.authorize(authorization_token,
                                     authorization.COMMIT)
        self._quiet()
        migration_uuid = claims['korora.migration']['uuid']
        with self._counter_lock:
            value = self._advanced.get(migration_uuid)
            if value is not None:
                LOG.info('%s: the counter was advanced for migration %s '
                         'already (to %d): not again', self.host,
                         migration_uuid, value)
                return value
            value = self.counter.increment()
            self._advanced[migration_uuid] = value
            self._advanced = advanced_counters.save(
                os.path.join(self.state_path, ADVANCED_FILE),
                self._advanced, MAX_ADVANCED)
        return value


def _secret(value):
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SECRET:
        raise exception.EvidenceError('a vTPM secret is 1 to %d characters'
                                      % MAX_SECRET)
    return value


class BusEndpoint:
    """What the message bus may ask of the manager, and nothing else.

    oslo.messaging dispatches every public method of an endpoint, so the
    manager itself is never one: its host-local calls (open the secret,
    measure, advance the counter) and its life cycle are not on the bus.
    """

    target = messaging.Target(version='2.0')

    def __init__(self, manager):
        self._manager = manager

    def get_identity(self, ctxt):
        return self._manager.get_identity(ctxt)

    @messaging.expected_exceptions(exception.NotAuthorized)
    def activate_credential(self, ctxt, challenge, credential_blob,
                            encrypted_secret):
        return self._manager.activate_credential(
            ctxt, challenge, credential_blob, encrypted_secret)

    @messaging.expected_exceptions(exception.XenVTPMMgrError,
                                   exception.NotAuthorized)
    def attest(self, ctxt, challenge):
        return self._manager.attest(ctxt, challenge)

    @messaging.expected_exceptions(exception.NotAuthorized)
    def certify_migration_key(self, ctxt, authorization_token):
        return self._manager.certify_migration_key(ctxt, authorization_token)
