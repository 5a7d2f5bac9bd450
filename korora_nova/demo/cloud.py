"""Nova 34's services in one process, with Kororā on or off.

``KororaCloud`` is the cloud of korora-nova's functional tests
(``HostTrustInNovaTestBase``): Nova's API, conductor, scheduler and three
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
# come before anything else of oslo's (nova_base imports it first).
from korora_nova.tests.functional import nova_base

from korora_nova.hypervisors import file_backend
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.tests.functional import test_host_trust_in_nova

HOSTS = nova_base.NovaVTPMTestBase.COMPUTE_HOSTS
POLICY = test_host_trust_in_nova.POLICY
TRUSTED_FILTER = 'korora_nova.filters.TrustedVTPMFilter'


def server_id(server):
    return server if isinstance(server, str) else server['id']


class KororaCloud(test_host_trust_in_nova.HostTrustInNovaTestBase):
    """Kororā on: the hooked fake driver and TrustedVTPMFilter."""

    COMPUTE_DRIVER_CLASS = nova_base.KororaHookedFakeDriver
    SCHEDULER_FILTERS = (TRUSTED_FILTER,)

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


class PlainCloud(KororaCloud):
    """Kororā off in Nova: the plain vTPM fake driver, no Kororā filter."""

    COMPUTE_DRIVER_CLASS = nova_base.KororaVTPMFakeDriver
    SCHEDULER_FILTERS = ()
