"""Kororā around a real libvirt live migration: the test bed shared by
the real-hypervisor tests and benchmarks/real_migration.py.

Two private libvirt hosts (korora_nova.tests.libvirt_hosts) with
migration TLS from one test CA; each host with its own swtpm as platform
TPM and its own vTPM manager serving on the bus ([DEFAULT] transport_url:
the test process's rabbitmq-server node, or oslo.messaging's in-process
driver); both enrolled and judged by one policy; the verifier's database
in SQLite; korora-libvirt-hook installed in each host's qemu.d (as
korora-manage libvirt-hook install writes it), asking its own host's
vTPM manager.

The Kororā steps are the protocol object the hooked Nova driver drives
(korora_nova.hooks.protocol), one per host, each asking the verifier on
the bus and its own vTPM manager on its socket; the migration itself is
libvirt's virDomainMigrateToURI3 with the flags Kororā gives Nova's.
"""

import os
import shlex
import time

import fixtures
import libvirt
from oslo_config import fixture as config_fixture

from korora_nova.attestation import results
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova.hooks import commit
from korora_nova.libvirt_hook import install as hook_install
from korora_nova.hooks import precheck
from korora_nova.hooks import protocol as protocol_module
from korora_nova.hypervisors import libvirt_backend
from korora_nova.hypervisors import libvirt_migration
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.tests import fixtures as korora_fixtures
from korora_nova.tests import libvirt_hosts
from korora_nova.tests.unit.attestation import signing
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.rpcapi import verifier as verifier_rpcapi
from korora_nova.vtpm_manager import local_client

POLICY = 'kvm-2026-11'
# What Nova's libvirt driver asks for (its default live_migration flags)
# with [libvirt] live_migration_with_native_tls = true.
NOVA_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER |
              libvirt.VIR_MIGRATE_UNDEFINE_SOURCE |
              libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_TLS)


def hook_text(socket_path, switch):
    """The hook as korora-manage libvirt-hook install writes it, asking
    the host's vTPM manager on socket_path, with one line more: it runs
    only while the switch file exists (hook_enabled), so that a
    benchmark can migrate without Kororā on the same hosts."""
    text = hook_install.hook_script(socket_path,
                                    conf.CONF.korora.libvirt_hook_timeout)
    marker = hook_install.MARKER + '\n'
    return text.replace(marker, marker + '[ -e %s ] || exit 0\n'
                        % shlex.quote(switch), 1)


class Instance:
    """What the pre-check functions read of Nova's instance."""

    def __init__(self, uuid):
        self.uuid = uuid


class Migrated:
    """One migration's outcome: the domain on the destination, the
    record (None with Kororā off) and libvirt's job statistics."""

    def __init__(self, domain, record, stats):
        self.domain = domain
        self.record = record
        self.stats = stats


class KororaLibvirtPairFixture(fixtures.Fixture):
    """Two libvirt hosts, 'kvm-a' and 'kvm-b', ready for Kororā.

    bus: 'rabbitmq' (the test process's broker) or 'in-process'.
    Attributes after setUp: hosts {name: LibvirtHostFixture}, managers
    {name: VTPMManagerFixture}, protocols {name: MigrationProtocol},
    api (the verifier's VTPMManagerAPI), database, names (a, b).
    """

    def __init__(self, bus='rabbitmq'):
        super().__init__()
        self.bus = bus
        self.names = ('kvm-a', 'kvm-b')
        self.resumed_at = None

    def _setUp(self):
        self.config = self.useFixture(config_fixture.Config(conf.CONF))
        if self.bus == 'rabbitmq':
            self.useFixture(korora_fixtures.RabbitMQBusFixture(conf.CONF))
        else:
            self.useFixture(korora_fixtures.InProcessBusFixture(conf.CONF))
        self.database = self.useFixture(
            korora_fixtures.VerifierDatabaseFixture())
        folder = self.useFixture(fixtures.TempDir()).path
        self.hook_switch = os.path.join(folder, 'libvirt-hook-enabled')
        self.hook_enabled(True)
        self.config.config(group='korora', pcr_watch_interval=0.05,
                           attestation_timeout=5.0)
        keys = self.useFixture(korora_fixtures.VerifierKeysFixture())
        self.verifier = self.useFixture(
            korora_fixtures.VerifierFixture(keys.signer))
        self.api = self.verifier.manager_api
        # Before the managers start: they measure their configuration.
        self.operator = self.useFixture(
            signing.OperatorKeyFixture(conf.CONF))
        self.managers, hooks = {}, {}
        for name in self.names:
            tpm = self.useFixture(korora_fixtures.SoftwareTPMFixture())
            # Each manager answers its host's hook, for its host name.
            self.managers[name] = self.useFixture(
                korora_fixtures.VTPMManagerFixture(name, tpm))
            hooks[name] = {'korora': hook_text(
                self.managers[name].hook_socket, self.hook_switch)}
        a, b = self.names
        pair = self.useFixture(libvirt_hosts.LibvirtHostPairFixture(
            hooks_a=hooks[a], hooks_b=hooks[b], tls=True))
        self.hosts = {a: pair.a, b: pair.b}
        self.config.config(group='korora', ek_ca_bundle=tpm.ca_bundle)
        for name in self.names:
            enrollment.enroll(self.api, name)
        attestation.record_policy(self.api, a, POLICY, 1, self.operator.key)
        for name in self.names:
            db.host_set_policy(name, POLICY)
        trusted = results.TrustedKeys.of(keys.signer)
        self.protocols = {}
        for name in self.names:
            # Each manager measures its own host's guests.
            self.managers[name].manager.state_backend = self.backend(name)
            self.protocols[name] = protocol_module.MigrationProtocol(
                name, verifier_rpcapi.VerifierAPI(), trusted,
                local_client.LocalManager(
                    self.managers[name].hook_socket,
                    conf.CONF.korora.migration_step_timeout))

    def hook_enabled(self, enabled):
        """Switch korora-libvirt-hook on or off on both hosts."""
        if enabled:
            open(self.hook_switch, 'w').close()
        elif os.path.exists(self.hook_switch):
            os.unlink(self.hook_switch)

    def other(self, name):
        a, b = self.names
        return b if name == a else a

    def backend(self, name):
        return libvirt_backend.LibvirtStateBackend(
            self.hosts[name].uri, swtpm_root=self.hosts[name].swtpm_root)

    def start_guest(self, host, **kwargs):
        """A guest with an encrypted vTPM on host (a Guest)."""
        return self.hosts[host].start_guest(**kwargs)

    # The hooked driver's steps, through the same protocol object.

    def prepare(self, guest, source, dest):
        """Pre-checks and hand-over; returns the record (TRANSFERRING).
        Raises precheck.Refused (a MigrationPreCheckError) when Kororā
        refuses."""
        instance = Instance(guest.uuid)
        try:
            record = self.protocols[dest].request(guest.uuid, source)
        except protocol_module.StepRefused as error:
            raise precheck.refuse(instance, str(error))
        try:
            record, key = self.protocols[source].attest_destination(record)
        except protocol_module.StepRefused as error:
            commit.abort(self.protocols[source], record.uuid, str(error))
            raise precheck.refuse(instance, str(error))
        envelope = self.protocols[source].seal(
            record, key, guest.secret_value.decode())
        record, secret = self.protocols[dest].open_transfer(record,
                                                            envelope)
        # As Nova's libvirt driver does in pre_live_migration.
        if not self.hosts[dest].has_secret(guest.secret_uuid):
            self.hosts[dest].define_secret(guest.secret_uuid, secret)
        return record

    def migrate(self, guest, source, dest, korora=True,
                verify_before_resume=False):
        """libvirt's migration with Nova's flags (as Kororā changes them
        when korora is True), migration TLS on. Returns the domain on
        the destination; raises AssertionError with libvirt's error."""
        flags = NOVA_FLAGS
        if korora:
            flags = libvirt_migration.migration_flags(flags,
                                                      verify_before_resume)
            refusal = libvirt_migration.stream_refusal(flags, False)
            if refusal:
                raise AssertionError(refusal)
        else:
            # Nova defines the secret on the destination itself.
            self.hosts[source].copy_secret_to(self.hosts[dest],
                                              guest.secret_uuid)
        error = self.hosts[source].migrate(
            guest, self.hosts[dest], p2p=True, copy_secret=False,
            flags=flags)
        if error is not None:
            raise AssertionError('migration %s -> %s failed: %s'
                                 % (source, dest, error))
        return self.hosts[dest].domain(guest)

    def finish(self, record, guest, arrived, resume=False):
        """Measure and sign on the source, verify on the destination
        (quarantine: pause, QUARANTINED), commit, and undefine the
        source's domain as the hooked driver does. Returns the record
        as the verifier's database holds it."""
        source, dest = record.source_host, record.dest_host
        secret = guest.secret_value.decode()
        record = self.protocols[source].measure(record, secret, False)
        try:
            record = self.protocols[dest].verify_arrival(record, secret)
        except protocol_module.Quarantined:
            arrived.suspend()
            return records.get(record.uuid)
        if resume:
            arrived.resume()
            self.resumed_at = time.perf_counter()
        commit.commit(self.protocols[source], record, self.backend(source))
        self.undefine_inactive(source, guest)
        return records.get(record.uuid)

    def undefine_inactive(self, name, guest):
        """What LibvirtLiveMigrationHooks.korora_undefine_source does."""
        try:
            domain = self.hosts[name].domain(guest)
        except libvirt.libvirtError:
            return
        if not domain.isActive():
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)

    def live_migrate(self, guest, source, korora=True,
                     verify_before_resume=False):
        """One whole live migration to the other host. Returns
        (Migrated, {phase: seconds}): with Kororā, 'before' (pre-checks,
        hand-over), 'transfer' (libvirt's call), 'paused' (arrival to
        resume, verify_before_resume only) and 'after' (manifest,
        verification, commit); without, 'transfer' only."""
        dest = self.other(source)
        times = {}
        started = time.perf_counter()
        record = self.prepare(guest, source, dest) if korora else None
        times['before'] = time.perf_counter() - started
        mark = time.perf_counter()
        arrived = self.migrate(guest, source, dest, korora,
                               verify_before_resume)
        times['transfer'] = time.perf_counter() - mark
        stats = arrived.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        if korora:
            mark = time.perf_counter()
            record = self.finish(record, guest, arrived,
                                 resume=verify_before_resume)
            times['after'] = time.perf_counter() - mark
            if verify_before_resume:
                times['paused'] = self.resumed_at - mark
            if record.state != states.COMMITTED:
                raise AssertionError('migration %s ended %s: %s' % (
                    record.uuid, record.state, record.reason))
        times['total'] = time.perf_counter() - started
        return Migrated(arrived, record, stats), times
