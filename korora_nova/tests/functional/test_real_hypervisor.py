"""Kororā around a real libvirt live migration of a guest with a vTPM.

Two libvirt hosts on this machine (two libvirtd daemons, each in a mount
namespace of its own), KVM where /dev/kvm works and TCG otherwise; each
host has its own swtpm as platform TPM and its own vTPM manager on the
in-process bus; the verifier's database is SQLite; korora-libvirt-hook is
installed in each host's qemu.d.

Nova's libvirt driver cannot be driven here, so the live migration is
libvirt's own call (virDomainMigrateToURI3, with the flags Kororā gives
Nova's) and the Kororā steps around it are the functions the hooked
driver calls, in the driver's order.
"""

import os
import sys

import libvirt
from nova import exception as nova_exception

from korora_nova.db import api as db
from korora_nova.hooks import arrival
from korora_nova.hooks import commit
from korora_nova.hooks import handover
from korora_nova.hooks import manifest
from korora_nova.hooks import precheck
from korora_nova.hypervisors import libvirt_backend
from korora_nova.hypervisors import libvirt_migration
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.tests import base
from korora_nova.tests import fixtures
from korora_nova.tests import libvirt_hosts
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.vtpm_manager import local_channel
from korora_nova.vtpm_manager import rpcapi

SOURCE, DEST = 'kvm-a', 'kvm-b'
POLICY = 'kvm-2026-11'
PASSPHRASE = 'vtpm-passphrase-7d1e'
NOVA_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER |
              libvirt.VIR_MIGRATE_UNDEFINE_SOURCE |
              libvirt.VIR_MIGRATE_PERSIST_DEST)

HOOK = '''#!/bin/sh
exec %(python)s -m korora_nova.cmd.libvirt_hook --config-file %(conf)s "$@"
'''


class Instance:
    """What the pre-check functions read of Nova's instance."""

    def __init__(self, uuid):
        self.uuid = uuid


class RealHypervisorTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        reason = libvirt_hosts.availability()
        if reason:
            self.skipTest('no guest can run here: %s' % reason)
        self.useFixture(fixtures.InProcessBusFixture(self.config.conf))
        self.database = self.useFixture(fixtures.VerifierDatabaseFixture())
        folder = self.useFixture(fixtures.fixtures.TempDir()).path
        self.flags(local_channel_key=folder + '/local-channel.key',
                   pcr_watch_interval=0.05, attestation_timeout=2.0)
        self.api = rpcapi.VTPMManagerAPI()
        self.managers, hooks = {}, {}
        for name in (SOURCE, DEST):
            tpm = self.useFixture(fixtures.SoftwareTPMFixture())
            self.managers[name] = self.useFixture(
                fixtures.VTPMManagerFixture(name, tpm))
            conf = '%s/%s.conf' % (folder, name)
            with open(conf, 'w') as stream:
                stream.write('[DEFAULT]\nhost = %s\n[korora_database]\n'
                             'connection = sqlite:///%s\n'
                             % (name, self.database.path))
            hooks[name] = {'korora': HOOK % {'python': sys.executable,
                                             'conf': conf}}
        # Both hosts use migration TLS certificates of one test CA.
        pair = self.useFixture(libvirt_hosts.LibvirtHostPairFixture(
            hooks_a=hooks[SOURCE], hooks_b=hooks[DEST], tls=True))
        self.hosts = {SOURCE: pair.a, DEST: pair.b}
        self.flags(ek_ca_bundle=tpm.ca_bundle)
        for name in (SOURCE, DEST):
            enrollment.enroll(self.api, name)
        attestation.record_policy(self.api, SOURCE, POLICY, 1)
        for name in (SOURCE, DEST):
            db.host_set_policy(name, POLICY)
        self.channel_key = local_channel.load_key(
            self.config.conf.korora.local_channel_key)
        self.guest = self.hosts[SOURCE].start_guest(secret_value=PASSPHRASE)
        self.domain = self.hosts[SOURCE].domain(self.guest)
        self.instance = Instance(self.guest.uuid)

    def backend(self, host):
        return libvirt_backend.LibvirtStateBackend(
            self.hosts[host].uri, swtpm_root=self.hosts[host].swtpm_root)

    # The hooked driver's steps, in its order.

    def prepare(self):
        """Pre-checks and hand-over; returns the record (TRANSFERRING)."""
        record = precheck.request(
            self.instance, SOURCE, DEST,
            precheck.attest_peer(self.instance, 'source', SOURCE))
        try:
            verdict = precheck.attest_peer(self.instance, 'destination',
                                           DEST)
        except precheck.Refused as error:
            commit.abort(record.uuid, SOURCE, error.korora_reason)
            raise
        records.transition(record.uuid, SOURCE, states.PEERS_ATTESTED,
                           details={'source_nonce':
                                    verdict.attestation.extra_data.hex()})
        nonce = os.urandom(handover.NONCE_SIZE)
        key = handover.certify_destination_key(
            self.api, DEST, db.host_get(DEST).ak_public, nonce)
        envelope = handover.seal_secret(key, PASSPHRASE,
                                        handover.binding(record))
        records.transition(record.uuid, SOURCE, states.KEY_CERTIFIED)
        secret = handover.open_secret(self.api, DEST, self.channel_key,
                                      envelope, handover.binding(record))
        # As the base driver does in pre_live_migration.
        self.hosts[DEST].define_secret(self.guest.secret_uuid, secret)
        return records.transition(record.uuid, DEST, states.TRANSFERRING)

    def migrate(self, verify_before_resume=False):
        """libvirt's migration with Nova's flags as Kororā sets them
        (source kept defined; paused on arrival with verify_before_resume)
        and migration TLS on."""
        flags = libvirt_migration.migration_flags(
            NOVA_FLAGS | libvirt.VIR_MIGRATE_TLS, verify_before_resume)
        self.assertIsNone(libvirt_migration.stream_refusal(flags, False))
        error = self.hosts[SOURCE].migrate(
            self.guest, self.hosts[DEST], p2p=True, copy_secret=False,
            flags=flags)
        self.assertIsNone(error)
        return self.hosts[DEST].domain(self.guest)

    def finish(self, record, arrived, tamper=None, resume=False):
        manifest.measure_and_sign(records.get(record.uuid),
                                  self.backend(SOURCE), self.api,
                                  PASSPHRASE)
        if tamper:
            tamper()
        try:
            checked = arrival.verify(records.get(record.uuid),
                                     self.backend(DEST), PASSPHRASE)
        except arrival.IntegrityFailure as failure:
            arrived.suspend()
            records.transition(record.uuid, DEST, states.QUARANTINED,
                               reason='%s: %s' % (failure.item,
                                                  failure.reason))
            return records.get(record.uuid)
        records.transition(record.uuid, DEST, states.VERIFIED,
                           details={'items': dict(checked.items)})
        if resume:
            arrived.resume()
        commit.commit(records.get(record.uuid), SOURCE,
                      self.backend(SOURCE), self.api)
        return records.get(record.uuid)


class TestRealLiveMigration(RealHypervisorTestCase):

    def test_trusted_destination_gets_the_vtpm_proven_equal(self):
        record = self.prepare()
        arrived = self.migrate()
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, arrived.state()[0])
        # The source's copy is still there to be measured.
        self.assertTrue(os.path.exists(
            self.hosts[SOURCE].state_path(self.instance.uuid)))
        record = self.finish(record, arrived)
        self.assertEqual(states.COMMITTED, record.state)
        signed, _quote = manifest.load(record.manifest)
        self.assertEqual(['vtpm-state', 'domain-security'],
                         list(signed.items))
        self.assertEqual(
            dict(signed.items),
            dict(self.backend(DEST).measure(self.instance.uuid,
                                            vtpm_secret=PASSPHRASE)))
        # Committed: the source's vTPM state is gone, the guest runs on
        # the destination with its own.
        self.assertFalse(os.path.exists(
            self.hosts[SOURCE].state_path(self.instance.uuid)))
        self.assertTrue(os.path.exists(
            self.hosts[DEST].state_path(self.instance.uuid)))
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, arrived.state()[0])
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())

    def test_verify_before_resume(self):
        record = self.prepare()
        arrived = self.migrate(verify_before_resume=True)
        # Arrived paused: it runs only once the manifest checked out.
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, arrived.state()[0])
        record = self.finish(record, arrived, resume=True)
        self.assertEqual(states.COMMITTED, record.state)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, arrived.state()[0])

    def test_vtpm_state_altered_on_the_destination_is_quarantined(self):
        record = self.prepare()
        arrived = self.migrate()
        path = self.hosts[DEST].state_path(self.instance.uuid)

        def tamper():
            with open(path, 'r+b') as state:
                state.seek(100)
                byte = state.read(1)
                state.seek(100)
                state.write(bytes([byte[0] ^ 1]))

        record = self.finish(record, arrived, tamper=tamper)
        self.assertEqual(states.QUARANTINED, record.state)
        self.assertIn('vtpm-state', record.reason)
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, arrived.state()[0])


class TestRefusedOnARealHypervisor(RealHypervisorTestCase):

    def test_destination_whose_pcrs_changed(self):
        self.managers[DEST].extend_pcr(10, b'unexpected kernel module')
        error = self.assertRaises(nova_exception.MigrationPreCheckError,
                                  self.prepare)
        self.assertIn('Korora: the destination host is not trusted: '
                      'kvm-b: PCR sha256:10', str(error))
        record = records.list()[0]
        self.assertEqual(states.ABORTED, record.state)
        # virsh migrate (no Nova, no Kororā record) meets the libvirt
        # hook on the destination, which refuses with Kororā's reason.
        error = self.hosts[SOURCE].virsh_migrate(self.guest,
                                                 self.hosts[DEST], tls=True)
        self.assertIsNotNone(error)
        self.assertIn('Korora: incoming live migration of domain', error)
        self.assertIn('no Korora-approved migration', error)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.domain.state()[0])

    def test_unencrypted_stream_is_refused(self):
        flags = libvirt_migration.migration_flags(NOVA_FLAGS, False)
        self.assertEqual(libvirt_migration.UNENCRYPTED_STREAM,
                         libvirt_migration.stream_refusal(flags, False))
        self.assertIsNone(libvirt_migration.stream_refusal(
            flags | libvirt.VIR_MIGRATE_TLS, False))
