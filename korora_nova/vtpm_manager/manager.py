"""The vTPM manager's RPC endpoint and PCR watch.

It owns the host TPM: every TPM command of the host's korora services goes
through its one TPMConnection.
"""

import os
import threading
import time

import oslo_messaging as messaging
from oslo_log import log as logging

from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import purpose as purpose_module
from korora_nova import exception
from korora_nova import rpc
from korora_nova.tpm import attestation_key
from korora_nova.tpm import certify
from korora_nova.tpm import connection as tpm_connection
from korora_nova.tpm import duplication
from korora_nova.tpm import endorsement
from korora_nova.tpm import nv_counter
from korora_nova.tpm import quote
from korora_nova.verifier import rpcapi as verifier_rpcapi
from korora_nova.vtpm_manager import local_channel
from korora_nova.vtpm_manager import self_measurement

LOG = logging.getLogger(__name__)

# Per-migration keys not yet used: at most this many, for this long.
MAX_MIGRATION_KEYS = 256
MIGRATION_KEY_LIFETIME = 3600.0
MAX_BINDING = 64


class VTPMManager:
    """Endpoint of topic [korora] manager_topic, server [DEFAULT] host."""

    target = messaging.Target(version='1.1')

    def __init__(self, conf, host=None, tcti=None, state_path=None,
                 verifier_api=None):
        """host, tcti and state_path default to [DEFAULT] host, [korora]
        tcti and [korora] state_path."""
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
        self._watcher = None
        self._last_values = None
        self._channel_key = None
        # unique of each certified key not yet used -> when it was made.
        self._migration_keys = {}
        self._keys_lock = threading.Lock()
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
        self._channel_key = local_channel.create_key(
            self.conf.korora.local_channel_key)
        self._last_values = quote.read_pcrs(self.connection, self.selection)
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch_pcrs,
                                         name='korora-pcr-watch',
                                         daemon=True)
        self._watcher.start()

    def stop(self):
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.connection.close()

    def _watch_pcrs(self):
        """Tell the verifier at once when an attested PCR changes."""
        while not self._stop.wait(self.conf.korora.pcr_watch_interval):
            try:
                values = quote.read_pcrs(self.connection, self.selection)
            except exception.KororaError as error:
                LOG.warning('%s: reading PCRs failed: %s', self.host, error)
                continue
            if values != self._last_values:
                changed = sorted(
                    '%s:%d' % (bank, index)
                    for bank, pcrs in values.items()
                    for index, value in pcrs.items()
                    if self._last_values.get(bank, {}).get(index) != value)
                LOG.warning('%s: PCRs %s changed; asking the verifier to '
                            'attest this host now', self.host,
                            ', '.join(changed))
                self._last_values = values
                self.verifier_api.pcrs_changed(self.host)

    # RPC API 1.0

    def get_identity(self, ctxt):
        ek = endorsement.read_endorsement(self.connection,
                                          self.conf.korora.ek_types)
        return {'ek_type': ek.ek_type,
                'ek_certificate': rpc.encode(ek.certificate),
                'ek_public': rpc.encode(ek.public),
                'ak_public': rpc.encode(self.ak.public)}

    def activate_credential(self, ctxt, credential_blob, encrypted_secret):
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
            except self_measurement.XenVTPMMgrError:
                # oslo.log appends the exception's message.
                LOG.error('%s: refusing to quote', self.host)
                raise
            if now != self._vtpmmgr:
                self_measurement.measure_vtpmmgr_change(
                    self.connection, self.conf, now)
                self._vtpmmgr = now

    @messaging.expected_exceptions(self_measurement.XenVTPMMgrError,
                                   exception.EvidenceError)
    def attest(self, ctxt, nonce, purpose='attest'):
        """A quote over the purpose's qualifying data for nonce: the
        caller names a purpose, never the bytes the TPM signs."""
        nonce = rpc.decode(nonce, 'nonce', evidence.MAX_NONCE_SIZE)
        labels = {purpose_module.name(label): label
                  for label in purpose_module.ALL}
        label = labels.get(purpose) if isinstance(purpose, str) else None
        if label is None:
            raise exception.EvidenceError(
                '%s: unknown signature purpose %r (one of %s)'
                % (self.host, str(purpose)[:32], ', '.join(sorted(labels))))
        self._measure_vtpmmgr()
        made = quote.quote(self.connection, self.ak, self.selection,
                           purpose_module.qualifying_data(label, nonce))
        return {'message': rpc.encode(made.message),
                'signature': rpc.encode(made.signature),
                'pcr_values': pcr_values.to_json(made.pcr_values)}

    # RPC API 1.1: the live-migration protocol

    def certify_migration_key(self, ctxt, nonce):
        """A fresh storage key for one migration, certified by the AK over
        the source's nonce. It opens one sealed secret, then is gone."""
        nonce = rpc.decode(nonce, 'nonce', evidence.MAX_NONCE_SIZE)
        key = certify.create_certified_storage_key(self.connection, self.ak,
                                                   nonce)
        with self._keys_lock:
            now = time.monotonic()
            for unique, made in list(self._migration_keys.items()):
                if now - made > MIGRATION_KEY_LIFETIME:
                    del self._migration_keys[unique]
            if len(self._migration_keys) >= MAX_MIGRATION_KEYS:
                raise exception.TPMError(
                    '%s: %d migration keys are waiting to be used; refusing '
                    'another' % (self.host, MAX_MIGRATION_KEYS))
            self._migration_keys[key.unique] = now
        return {'public': rpc.encode(key.public),
                'attestation': rpc.encode(key.attestation),
                'signature': rpc.encode(key.signature),
                'unique': rpc.encode(key.unique)}

    def open_duplicate(self, ctxt, unique, public, duplicate, seed, binding):
        """Import a secret duplicated to one of our migration keys; return
        it encrypted under the host's local channel key, bound to binding.
        """
        unique = rpc.decode(unique, 'key unique', certify.UNIQUE_SIZE)
        binding = rpc.decode(binding, 'binding', MAX_BINDING)
        duplicated = duplication.Duplicate(
            rpc.decode(public, 'duplicated object', evidence.MAX_PUBLIC_SIZE),
            rpc.decode(duplicate, 'duplicate',
                       duplication.MAX_DUPLICATE_SIZE),
            rpc.decode(seed, 'encrypted seed', duplication.MAX_SEED_SIZE))
        with self._keys_lock:
            made = self._migration_keys.pop(unique, None)
        if made is None or time.monotonic() - made > MIGRATION_KEY_LIFETIME:
            raise exception.EvidenceError(
                '%s: the secret is sealed to a key this vTPM manager did not '
                'certify, used already or let expire' % self.host)
        secret = duplication.unwrap(self.connection, unique, duplicated)
        return {'sealed': rpc.encode(local_channel.seal(
            self._channel_key, secret, binding))}

    def read_counter(self, ctxt):
        return {'value': self.counter.read()}

    def advance_counter(self, ctxt):
        return {'value': self.counter.increment()}
