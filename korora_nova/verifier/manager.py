"""The verifier's RPC endpoint and its attestation schedule."""

import concurrent.futures
import threading
import time

import oslo_messaging as messaging
from oslo_log import log as logging

from korora_nova.db import api as db
from korora_nova import exception
from korora_nova.migration import audit

LOG = logging.getLogger(__name__)

ROUND_WORKERS = 8
# After a failed anchoring, wait this long (at most) before the next try:
# each try walks the log and may wait for an unreachable host.
ANCHOR_RETRY = 60.0


class Verifier:
    """Endpoint of topic [korora] verifier_topic, shared by all workers."""

    target = messaging.Target(version='1.0')

    def __init__(self, conf, attestor):
        self.conf = conf
        self.attestor = attestor
        self._stop = threading.Event()
        self._scheduler = None
        self._anchor_retry_at = 0.0
        self._pool = concurrent.futures.ThreadPoolExecutor(
            ROUND_WORKERS, thread_name_prefix='korora-attest')

    # RPC API 1.0

    def pcrs_changed(self, ctxt, host):
        """A host saw its PCRs change: attest it now."""
        try:
            verdict = self.attestor.attest(host)
        except db.HostNotFound:
            LOG.warning('PCR change reported by %s, which is not enrolled',
                        host)
            return
        LOG.info('%s attested after a PCR change: %s', host,
                 verdict.summary())

    def attest_host(self, ctxt, host):
        return self.attestor.attest(host).to_json()

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

    def run_due(self):
        """Attest every host whose turn has come; returns how many."""
        hosts = db.hosts_claim_due(self.conf.korora.attestation_interval)
        for future in [self._pool.submit(self._attest_quietly, host)
                       for host in hosts]:
            future.result()
        return len(hosts)

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

    def _attest_quietly(self, host):
        try:
            self.attestor.attest(host)
        except exception.KororaError as error:
            LOG.error('%s: attestation failed: %s', host, error)

    def _schedule(self):
        tick = min(1.0, self.conf.korora.attestation_interval)
        while not self._stop.wait(tick):
            try:
                self.run_due()
                self.anchor_due()
            except exception.KororaError as error:
                LOG.error('scheduled attestation round failed: %s', error)
            except Exception:
                # Keep the schedule alive whatever one round met (a
                # database outage, say); the error is logged in full.
                LOG.exception('scheduled attestation round failed')
