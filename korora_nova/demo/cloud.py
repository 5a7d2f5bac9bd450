"""Nova 34's services in one process, with Kororā on or off.

``TrustedCloud`` is the cloud of korora-nova's functional tests too
(their ``HostTrustInNovaTestBase``): Nova's API, conductor, scheduler and three
fake vTPM computes (compute-1..3), Placement and Nova's other fixtures;
each compute host has its own swtpm and korora vTPM manager; the
verifier keeps its database in SQLite, enrolled every host (EK
certificate chain, AK by credential activation), recorded the reference
policy from compute-1 and judged every host trusted. Kororā is on: the
computes run the hooked driver and the scheduler TrustedVTPMFilter.

``PlainCloud`` is the same cloud with Kororā off in Nova: the plain vTPM
fake driver and no Kororā filter (the TPMs, managers and verifier still
run beside it, so that both carry the same background work).
"""

# Nova's functional package monkey-patches eventlet on import: it must
# come before anything else of oslo's (nova_cloud imports it first).
from korora_nova.demo import nova_cloud

import time

import fixtures as fixtures_lib

from korora_nova import conf as korora_conf
from korora_nova.db import api as db
from korora_nova.demo import services
from korora_nova.hypervisors import file_backend
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova import rpc
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment

HOSTS = nova_cloud.NovaVTPMTestBase.COMPUTE_HOSTS
TRUSTED_FILTER = 'korora_nova.filters.TrustedVTPMFilter'


POLICY = 'compute-2026-11'
WAIT = 15.0


class TrustedCloud(nova_cloud.NovaVTPMTestBase):

    SCHEDULER_FILTERS = ('korora_nova.filters.TrustedVTPMFilter',)
    #: Not None: every host's manager reaches its swtpm through a
    #: slow-TPM proxy with delays of this scale (0: counting only),
    #: self.slow_tpms[host] (korora_nova.demo.slow_tpm.SlowTPM).
    SLOW_TPM_SCALE = None

    def setUp(self):
        super().setUp()
        self.addCleanup(rpc.cleanup)
        self.tpms, self.managers, self.slow_tpms = {}, {}, {}
        sockets = {}
        self.useFixture(fixtures_lib.MonkeyPatch(
            'korora_nova.demo.nova_cloud.KororaHookedFakeDriver.'
            'local_sockets', sockets))
        for host in self.COMPUTE_HOSTS:
            self.tpms[host] = self.useFixture(services.SoftwareTPMFixture())
            tcti = None
            if self.SLOW_TPM_SCALE is not None:
                self.slow_tpms[host] = self.useFixture(services.SlowTPMFixture(
                    self.tpms[host], self.SLOW_TPM_SCALE)).slow
                tcti = self.slow_tpms[host].tcti
            self.managers[host] = self.useFixture(
                services.VTPMManagerFixture(
                    host, self.tpms[host],
                    state_backend=file_backend.FileStateBackend(
                        self.state_root, host), tcti=tcti))
            sockets[host] = self.managers[host].hook_socket
        self.flags(ek_ca_bundle=self.tpms['compute-1'].ca_bundle,
                   group='korora')
        self.manager_api = self.verifier_fixture.manager_api
        for host in self.COMPUTE_HOSTS:
            enrollment.enroll(self.manager_api, host)
        attestation.record_policy(self.manager_api, 'compute-1', POLICY, 1,
                                  self.operator.key)
        for host in self.COMPUTE_HOSTS:
            db.host_set_policy(host, POLICY)
            self.assertTrue(self.attestor.attest(host).trusted)
        self.vtpm_flavor = self.create_vtpm_flavor()

    def configure_nova(self):
        # Before the computes start: their Korora start-up recovery asks
        # the verifier, whose answers they check with its key.
        self.flags(pcr_watch_interval=0.05, attestation_timeout=2.0,
                   migration_step_timeout=5.0, group='korora')
        self.database = self.useFixture(services.VerifierDatabaseFixture())
        # Before the managers start: they measure their configuration.
        self.operator = self.useFixture(
            services.OperatorKeyFixture(korora_conf.CONF))
        self.notifications = []
        self.verifier = self.start_verifier()

    def start_verifier(self):
        """The verifier's endpoint on the bus, as korora-verifier runs it
        (its schedule is left off: the tests decide when rounds run)."""
        test = self

        class Notifier:
            def info(self, ctxt, event_type, payload):
                test.notifications.append((event_type, payload))

        self.verifier_fixture = self.useFixture(services.VerifierFixture(
            services.verifier_keys(self).signer, Notifier()))
        self.attestor = self.verifier_fixture.attestor
        return self.verifier_fixture.verifier

    def stop_verifier(self):
        self.verifier_fixture.stop()

    @staticmethod
    def flags_conf():
        from korora_nova import conf
        return conf.CONF

    def change_host(self, host, measurement=b'unexpected kernel module'):
        """Something unexpected runs on host: its PCR 10 changes."""
        self.managers[host].extend_pcr(10, measurement)

    def wait_for_trust(self, host, trusted):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            entry = db.host_trust_all().get(host)
            if entry is not None and entry[0] == trusted:
                return entry
            time.sleep(0.05)
        self.fail('%s did not become %s within %s s: %s' % (
            host, 'trusted' if trusted else 'untrusted', WAIT,
            db.host_trust_all().get(host)))

    def filter_log(self):
        return self.stdlog.logger.output


def server_id(server):
    return server if isinstance(server, str) else server['id']


class KororaRecords:
    """What a cloud with Kororā on shows of a server's migrations: its
    records (in the verifier's database) and where its vTPM files are
    (the fake hosts' folders below self.state_root)."""

    def korora_records(self, server):
        """The server's Kororā migration records."""
        uuid = server_id(server)
        return [row for row in records.list() if row.instance_uuid == uuid]

    def record_uuids(self, server):
        return {row.uuid for row in self.korora_records(server)}

    def new_record(self, server, known):
        """The server's Kororā record whose uuid is not in known, or None.

        (Records are told apart by uuid: their timestamps are kept to the
        second, so two migrations of one second tie on them.)
        """
        for row in self.korora_records(server):
            if row.uuid not in known:
                return row
        return None

    def wait_for_new_final_record(self, server, known, timeout=None):
        """Wait for the new record (see new_record) to reach a final
        state; return it."""
        def check():
            row = self.new_record(server, known)
            return row if row is not None and states.is_final(
                row.state) else None
        return self._poll(check, timeout,
                          'a new final Korora migration record of %s'
                          % server_id(server))

    def hosts_with_state(self, server):
        """The hosts holding the server's vTPM files."""
        return [host for host in self.COMPUTE_HOSTS
                if file_backend.FileStateBackend(
                    self.state_root, host).has_instance(server_id(server))]


class KororaCloud(KororaRecords, TrustedCloud):
    """Kororā on: the hooked fake driver and TrustedVTPMFilter."""

    COMPUTE_DRIVER_CLASS = nova_cloud.KororaHookedFakeDriver
    SCHEDULER_FILTERS = (TRUSTED_FILTER,)


class PlainCloud(KororaCloud):
    """Kororā off in Nova: the plain vTPM fake driver, no Kororā filter."""

    COMPUTE_DRIVER_CLASS = nova_cloud.KororaVTPMFakeDriver
    SCHEDULER_FILTERS = ()
