"""The vTPM manager's self-measurement on a Xen host: the vtpmmgr image
and the running vtpmmgr domain, measured into a real swtpm's PCR and
judged by the verifier.

libvirt is its test driver loaded with Xen domain definitions
(test:///ABS/PATH/node.xml): no Xen hypervisor runs here, so what the
libxl driver lists on a real Xen host is not exercised. Nothing is
mocked: real files, real libvirt, real swtpm TPMs, real vTPM managers
over oslo.messaging's in-process driver, a real SQLite verifier
database.
"""

import hashlib
import os

import fixtures
import libvirt

from korora_nova.db import api as db
from tests import base
from korora_nova.demo import services
from korora_nova import exception
from korora_nova.tpm import quote
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.vtpm_manager import manager
from korora_nova.rpcapi import vtpm_manager as rpcapi
from korora_nova.vtpm_manager import self_measurement
from korora_nova.vtpm_manager import service

PCR = 10
IMAGE_V1 = b'vtpmmgr-stubdom, Xen 4.17 ' * 4096
IMAGE_V2 = b'vtpmmgr-stubdom, Xen 4.19 ' * 4096
OTHER_KERNEL = '/usr/lib/xen/boot/vtpmmgr-stubdom-unapproved.gz'
POLICY = 'xen-2026-11'

NODE = """<node>
  <domain type='xen'>
    <name>{name}</name>
    <memory>131072</memory>
    <os><type arch='x86_64'>xen</type><kernel>{kernel}</kernel>
      <cmdline>tpm2=1 tpmlocality=2</cmdline></os>
  </domain>
  <domain type='xen' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>vtpmmgr-previous</name>
    <memory>131072</memory>
    <os><type arch='x86_64'>xen</type>
      <kernel>/usr/lib/xen/boot/vtpmmgr-stubdom-4.12.gz</kernel></os>
    <test:runstate>5</test:runstate>
  </domain>
  <domain type='xen'>
    <name>xen-guest</name>
    <memory>65536</memory>
    <os><type arch='x86_64'>xen</type><kernel>/boot/vmlinuz</kernel></os>
  </domain>
  <domain type='kvm'>
    <name>kvm-guest</name>
    <memory>65536</memory>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>
</node>
"""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def extended_once(data):
    """A PCR's value after one extend from zero with data's digest."""
    return hashlib.sha256(b'\0' * 32 + hashlib.sha256(data).digest()).digest()


class XenHostTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        # libvirt's default error handler prints every error to stderr.
        libvirt.registerErrorHandler(lambda context, error: None, None)
        self.addCleanup(libvirt.registerErrorHandler, None, None)
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.image = os.path.join(self.folder, 'boot',
                                  'vtpmmgr-stubdom.gz')
        os.mkdir(os.path.dirname(self.image))
        self.write_image(IMAGE_V1)
        self.node_file = os.path.join(self.folder, 'node.xml')
        self.uri = 'test://' + self.node_file
        self.node()

    def write_image(self, data):
        with open(self.image, 'wb') as handle:
            handle.write(data)

    def node(self, kernel=None, name='vtpmmgr'):
        """What libvirt lists: the test driver reads the file anew on
        every connection, so rewriting it changes the host."""
        with open(self.node_file, 'w') as handle:
            handle.write(NODE.format(name=name, kernel=kernel or self.image))

    def xen_flags(self, uri=True):
        self.flags(xen_vtpmmgr_image=self.image,
                   xen_vtpmmgr_libvirt_uri=self.uri if uri else None)

    def statement(self):
        return self_measurement.vtpmmgr_statement(self.config.conf)


class TestImage(XenHostTestCase):

    def test_kvm_hosts_state_nothing_about_vtpmmgr(self):
        self.assertIsNone(self.statement())
        self.assertNotIn(b'xen-vtpmmgr',
                         self_measurement.measurement(self.config.conf))

    def test_the_image_digest_is_measured(self):
        self.xen_flags(uri=False)
        self.assertEqual('xen-vtpmmgr=%s' % sha256(IMAGE_V1),
                         self.statement())
        data = self_measurement.measurement(self.config.conf,
                                            self.statement())
        self.assertTrue(data.endswith(
            b' xen-vtpmmgr=' + sha256(IMAGE_V1).encode()))

    def assertRefused(self, *parts):
        error = self.assertRaises(exception.XenVTPMMgrError,
                                  self.statement)
        for part in parts:
            self.assertIn(part, str(error))
        return error

    def test_missing_image(self):
        self.xen_flags(uri=False)
        os.remove(self.image)
        self.assertRefused(
            'the Xen vTPM manager image ([korora] xen_vtpmmgr_image) is '
            'missing: %s' % self.image)

    def test_symlinked_image_is_refused(self):
        real = self.image + '.real'
        os.rename(self.image, real)
        os.symlink(real, self.image)
        self.xen_flags(uri=False)
        self.assertRefused('[korora] xen_vtpmmgr_image', 'symbolic link',
                           self.image)

    def test_image_that_is_not_a_regular_file_is_refused(self):
        self.xen_flags(uri=False)
        os.remove(self.image)
        os.mkfifo(self.image)
        self.assertRefused('is not a regular file')
        os.remove(self.image)
        os.mkdir(self.image)
        self.assertRefused('is not a regular file')

    def test_oversized_image_is_refused_unread(self):
        self.xen_flags(uri=False)
        limit = self_measurement.MAX_VTPMMGR_IMAGE_BYTES
        os.truncate(self.image, limit + 1)      # sparse: nothing written
        self.assertRefused('holds %d bytes, more than the %d allowed'
                           % (limit + 1, limit))

    def test_libvirt_uri_without_image(self):
        self.flags(xen_vtpmmgr_libvirt_uri=self.uri)
        self.assertRefused('xen_vtpmmgr_libvirt_uri is set but [korora] '
                           'xen_vtpmmgr_image is not')

    def test_daemon_preflight_refuses_to_start(self):
        self.xen_flags(uri=False)
        os.remove(self.image)
        error = self.assertRaises(exception.XenVTPMMgrError,
                                  service.preflight, self.config.conf)
        self.assertIn('is missing: %s' % self.image, str(error))


class TestRunningDomain(XenHostTestCase):
    """The running vtpmmgr domain, as libvirt's test driver lists it."""

    def test_only_running_vtpmmgr_domains_are_listed(self):
        from korora_nova.hypervisors import libvirt_backend
        found = libvirt_backend.xen_vtpmmgr_domains(self.uri, self.image)
        self.assertEqual([('vtpmmgr', self.image)],
                         [(facts.name, facts.kernel) for facts in found])

    def test_domain_booting_the_image(self):
        self.xen_flags()
        self.assertEqual('xen-vtpmmgr=%s running=image' % sha256(IMAGE_V1),
                         self.statement())

    def test_domain_booting_another_kernel_is_a_mismatch(self):
        self.xen_flags()
        self.node(kernel=OTHER_KERNEL)
        self.assertEqual('xen-vtpmmgr=%s running=mismatch'
                         % sha256(IMAGE_V1), self.statement())
        # Named vtpmmgr, booted from a kernel of any name: still found.
        self.node(kernel='/var/tmp/not-a-stubdom.gz')
        self.assertTrue(self.statement().endswith(' running=mismatch'))
        # Booted from the image, under another name: found too.
        self.node(name='tpm-manager')
        self.assertTrue(self.statement().endswith(' running=image'))

    def test_no_running_vtpmmgr_domain(self):
        self.xen_flags()
        self.node(kernel='/boot/vmlinuz', name='another-guest')
        error = self.assertRaises(exception.XenVTPMMgrError,
                                  self.statement)
        self.assertIn('libvirt at %s lists no running Xen vTPM manager '
                      'domain (vtpmmgr)' % self.uri, str(error))
        self.assertIn('unset [korora] xen_vtpmmgr_libvirt_uri if xl starts '
                      'it', str(error))

    def test_unreachable_libvirt(self):
        self.xen_flags()
        self.flags(xen_vtpmmgr_libvirt_uri='test:///nonexistent/node.xml')
        error = self.assertRaises(exception.XenVTPMMgrError,
                                  self.statement)
        self.assertIn('cannot check the running Xen vTPM manager domain: '
                      'cannot reach libvirt at test:///nonexistent/node.xml',
                      str(error))


class RecordingVerifierAPI:
    """Stands in for the verifier's RPC client; the PCR watch calls it."""

    def __init__(self):
        self.changed = []

    def pcrs_changed(self, host):
        self.changed.append(host)


class TestMeasuredIntoTheTPM(XenHostTestCase):
    """What a vTPM manager extends into a real swtpm when it starts."""

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(
            self.config.conf))
        # A manager pins the verifier's keys ([korora]
        # verifier_public_keys) before it starts.
        services.verifier_keys(self)
        self.xen_flags()

    def start(self, host):
        tpm = self.useFixture(services.SoftwareTPMFixture())
        started = self.useFixture(services.VTPMManagerFixture(
            host, tpm, RecordingVerifierAPI()))
        return quote.read_pcrs(started.manager.connection,
                               [('sha256', PCR)])['sha256'][PCR]

    def test_same_image_same_pcr_another_image_another_pcr(self):
        first = self.start('xen-1')
        second = self.start('xen-2')
        self.assertEqual(first, second)
        expected = self_measurement.measurement(
            self.config.conf,
            'xen-vtpmmgr=%s running=image' % sha256(IMAGE_V1))
        self.assertEqual(extended_once(expected), first)

        self.write_image(IMAGE_V2)
        self.assertNotEqual(first, self.start('xen-3'))

    def test_foreign_vtpmmgr_at_start_is_measured(self):
        approved = self.start('xen-1')
        self.node(kernel=OTHER_KERNEL)
        self.assertNotEqual(approved, self.start('xen-2'))

    def test_missing_image_measures_nothing_and_does_not_start(self):
        tpm = self.useFixture(services.SoftwareTPMFixture())
        tpm.connection.close()      # swtpm serves one client at a time
        state = self.useFixture(fixtures.TempDir()).path
        os.remove(self.image)
        unstarted = manager.VTPMManager(self.config.conf, host='xen-1',
                                        tcti=tpm.tpm.tcti, state_path=state)
        self.addCleanup(unstarted.stop)
        error = self.assertRaises(exception.XenVTPMMgrError,
                                  unstarted.start)
        self.assertIn('the Xen vTPM manager image ([korora] '
                      'xen_vtpmmgr_image) is missing: %s' % self.image,
                      str(error))
        self.assertEqual(b'\0' * 32, quote.read_pcrs(
            unstarted.connection, [('sha256', PCR)])['sha256'][PCR])
        self.assertFalse(os.path.exists(os.path.join(state,
                                                     'self-measurement')))


class TestVerdicts(XenHostTestCase):
    """What the verifier concludes, as `korora-manage host show` prints
    it (the summaries of the host's recent verdicts)."""

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(
            self.config.conf))
        self.useFixture(services.VerifierDatabaseFixture())
        keys = services.verifier_keys(self)
        self.xen_flags()
        # Before the manager starts: it measures its configuration.
        self.operator = self.useFixture(
            services.OperatorKeyFixture(self.config.conf))
        self.tpm = self.useFixture(services.SoftwareTPMFixture())
        self.flags(ek_ca_bundle=self.tpm.ca_bundle)
        self.host = self.useFixture(services.VTPMManagerFixture(
            'xen-1', self.tpm, RecordingVerifierAPI()))
        # The verifier's client: its challenges are signed with its key.
        self.api = rpcapi.VTPMManagerAPI(keys.signer)
        self.attestor = attestation.Attestor(self.api)
        enrollment.enroll(self.api, 'xen-1')
        attestation.record_policy(self.api, 'xen-1', POLICY, 1,
                                  self.operator.key)
        db.host_set_policy('xen-1', POLICY)
        self.assertTrue(self.attestor.attest('xen-1').trusted)

    def shown(self):
        return db.verdicts_for_host('xen-1', 1)[0].summary

    def assertUntrustedByPolicy(self):
        verdict = self.attestor.attest('xen-1')
        self.assertFalse(verdict.trusted)
        self.assertIn('xen-1: PCR sha256:10 = ', self.shown())
        self.assertIn('not allowed by policy %s v1' % POLICY, self.shown())

    def test_restart_with_the_same_vtpmmgr_stays_trusted(self):
        self.host.stop()
        self.useFixture(services.VTPMManagerFixture(
            'xen-1', self.tpm, RecordingVerifierAPI(),
            state_path=self.host.state_path))
        self.assertTrue(self.attestor.attest('xen-1').trusted)

    def test_foreign_vtpmmgr_is_untrusted_until_the_tpm_restarts(self):
        self.node(kernel=OTHER_KERNEL)
        self.assertUntrustedByPolicy()
        # Back to the approved image: the TPM still holds the record that
        # another vtpmmgr held it in this boot.
        self.node()
        self.assertUntrustedByPolicy()

    def test_changed_image_is_measured_before_the_quote(self):
        self.write_image(IMAGE_V2)
        self.assertUntrustedByPolicy()

    def test_vtpmmgr_not_running_refuses_the_quote_with_the_reason(self):
        self.node(kernel='/boot/vmlinuz', name='another-guest')
        verdict = self.attestor.attest('xen-1')
        self.assertFalse(verdict.trusted)
        # The manager answered, with no quote: not worth another try.
        self.assertEqual({'no-quote'}, verdict.codes())
        # Through a broker the reason comes as "xen-1: the vTPM manager
        # failed: ..."; oslo.messaging's in-process driver hands over the
        # exception itself.
        self.assertIn('xen-1: no valid quote: ', self.shown())
        self.assertIn('libvirt at %s lists no running Xen vTPM manager '
                      'domain (vtpmmgr): start it before '
                      'korora-vtpm-manager' % self.uri, self.shown())
        self.assertNotIn('Traceback', self.shown())
        # Nothing was measured: once vtpmmgr runs again, all is well.
        self.node()
        self.assertTrue(self.attestor.attest('xen-1').trusted)

    def test_missing_image_refuses_the_quote_with_the_reason(self):
        os.remove(self.image)
        self.assertFalse(self.attestor.attest('xen-1').trusted)
        self.assertIn('xen-1: no valid quote: ', self.shown())
        self.assertIn('the Xen vTPM manager image ([korora] '
                      'xen_vtpmmgr_image) is missing: %s' % self.image,
                      self.shown())
        self.write_image(IMAGE_V1)
        self.assertTrue(self.attestor.attest('xen-1').trusted)
