"""Two real Xen 4.17 dom0s (tests.fixtures.xen_hosts), booted once for
the class (a TCG boot takes minutes): Xen runs, each dom0 has its
platform TPM, this machine's venv runs there, and korora-vtpm-manager on
dom0's TPM (device:/dev/tpmrm0) is enrolled and judged by the verifier
in this process over the broker on this machine (10.0.2.2 from dom0)."""

import hashlib
import os
import shutil
import sys
import time

import fixtures
from oslo_config import fixture as config_fixture
import testtools

from korora_nova import conf
from korora_nova.db import api as db
from korora_nova.demo import services
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from tests.fixtures import daemons
from tests.fixtures import rabbitmq
from tests.fixtures import xen_hosts

LINK_PORT = 7000
POLICY = 'xen-dom0'
MEASURED_PCR = 10
# Python under TCG is slow: the manager's start and its RPC answers.
MANAGER_START_TIMEOUT = 300.0
ATTESTATION_TIMEOUT = 60.0


class XenHostsTest(testtools.TestCase):
    """What runs on the dom0s of the Xen bed."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        reason = xen_hosts.availability()
        if reason:
            raise xen_hosts.XenHostError('the Xen bed cannot run here: %s'
                                         % reason)
        # A fixture whose setUp fails has cleaned up already.
        cls.bed = xen_hosts.XenDom0PairFixture()
        cls.bed.setUp()
        print('xen bed: image %s (%s s, reused: %s); both dom0s at a '
              'shell after %.0f s' % (
                  cls.bed.image.folder, cls.bed.image.build['seconds'],
                  cls.bed.image.build['reused'], cls.bed.started_in),
              file=sys.stderr, flush=True)

    @classmethod
    def tearDownClass(cls):
        cls.bed.cleanUp()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(600, gentle=True))

    def run_ok(self, host, command, timeout=xen_hosts.COMMAND_TIMEOUT):
        status, output = host.run(command, timeout)
        self.assertEqual(0, status, '%s on %s: %s' % (command, host.name,
                                                      output))
        return output

    def test_both_dom0s_run_xen_417_with_a_tpm(self):
        for host in self.bed.hosts:
            info = self.run_ok(host, 'xl info')
            fields = {key.strip(): value.strip() for key, value in (
                line.split(':', 1) for line in info.splitlines()
                if ':' in line)}
            self.assertEqual(('4', '17'), (fields.get('xen_major'),
                                           fields.get('xen_minor')), info)
            self.assertIn('Domain-0', self.run_ok(host, 'xl list'))
            self.run_ok(host, 'test -c /dev/tpmrm0')
            # The platform TPM answers through the kernel's resource
            # manager: the EK certificate's NV index (swtpm_setup's).
            self.assertIn('0x1c00002', self.run_ok(
                host, 'tpm2_getcap -T device:/dev/tpmrm0 handles-nv-index'
            ).lower())

    def test_this_machines_venv_runs_in_dom0_and_the_link_carries(self):
        tree = xen_hosts.shared_paths()[0]
        python = sys.executable
        output = self.run_ok(
            self.bed.a, 'PYTHONPATH=%s %s -c "import sys, tpm2_pytss, '
            'korora_nova.tpm.connection as c; print(c.__file__, '
            'sys.version_info[:2])"' % (tree, python))
        self.assertIn('%s/korora_nova/tpm/connection.py (%d, %d)'
                      % ((tree,) + sys.version_info[:2]), output)
        # The private link: xen-b answers xen-a on 10.0.0.2.
        address = xen_hosts.PAIR_ADDRESSES['xen-b']
        self.run_ok(self.bed.b, '(timeout 60 %s -c "import socket; '
                    's = socket.create_server((\'%s\', %d)); '
                    'c, _ = s.accept(); c.sendall(b\'hello from xen-b\')" '
                    '>/dev/null 2>&1 &)' % (python, address, LINK_PORT))
        output = self.run_ok(
            self.bed.a, 'for i in 1 2 3 4 5; do %s -c "import socket; '
            'print(socket.create_connection((\'%s\', %d), 10).recv(64))" '
            '&& break; sleep 2; done' % (python, address, LINK_PORT))
        self.assertIn("b'hello from xen-b'", output)

    def test_manager_on_dom0s_tpm_is_judged_by_the_verifier(self):
        self.useFixture(config_fixture.Config(conf.CONF))
        bus = self.useFixture(rabbitmq.RabbitMQBusFixture(conf.CONF))
        self.useFixture(services.VerifierDatabaseFixture())
        conf.CONF.set_override('attestation_timeout', ATTESTATION_TIMEOUT,
                               'korora')
        keys = self.useFixture(services.VerifierKeysFixture())
        verifier = self.useFixture(services.VerifierFixture(keys.signer))
        operator = self.useFixture(services.OperatorKeyFixture(conf.CONF))
        host = self.bed.a
        self.start_manager(host, bus, keys)

        enrollment.enroll(verifier.manager_api, host.name)
        attestation.record_policy(verifier.manager_api, host.name, POLICY, 1,
                                  operator.key)
        db.host_set_policy(host.name, POLICY)
        verdict = verifier.attestor.attest(host.name)
        self.assertTrue(verdict.trusted, verdict.summary())

        digest = hashlib.sha256(b'a module dom0 did not have').hexdigest()
        self.run_ok(host, 'tpm2_pcrextend -T device:/dev/tpmrm0 %d:sha256=%s'
                    % (MEASURED_PCR, digest))
        verdict = verifier.attestor.attest(host.name)
        self.assertFalse(verdict.trusted, verdict.summary())
        self.assertIn('PCR sha256:%d = ' % MEASURED_PCR, verdict.summary())
        self.assertIn('not allowed by policy %s v1' % POLICY,
                      verdict.summary())
        trusted, summary, _ = db.host_trust_all()[host.name]
        self.assertFalse(trusted, summary)

    def start_manager(self, host, bus, keys):
        """Start korora-vtpm-manager in host's dom0 on its platform TPM,
        talking to the broker on this machine; both dom0s need one once
        migrations between them are tested. Returns its log's path."""
        ca_bundle = services.shared_ca().write_bundle(
            os.path.join(host.shared, 'ek-ca-bundle.pem'))
        conf.CONF.set_override('ek_ca_bundle', ca_bundle, 'korora')
        public_key = os.path.join(host.shared, 'verifier-public-key.pem')
        shutil.copy(keys.public_path, public_key)
        log = os.path.join(host.shared, 'manager.log')
        config = daemons.write_config(
            os.path.join(host.shared, 'manager.conf'), {
                'DEFAULT': {
                    'host': host.name,
                    'transport_url': bus.broker.url.replace(
                        '127.0.0.1', xen_hosts.HOST_ADDRESS),
                    'control_exchange': conf.CONF.control_exchange},
                'korora': {
                    'tcti': 'device:/dev/tpmrm0',
                    'ek_ca_bundle': ca_bundle,
                    'verifier_public_keys': public_key,
                    'self_measurement_pcr': MEASURED_PCR,
                    'pcr_watch_interval': 2.0}})
        tree = xen_hosts.shared_paths()[0]
        script = os.path.join(os.path.dirname(sys.executable),
                              'korora-vtpm-manager')
        self.run_ok(host, 'rm -rf /var/lib/korora; PYTHONPATH=%s nohup %s '
                    '--config-file %s >%s 2>&1 </dev/null & echo $! '
                    '>/run/korora-manager.pid' % (tree, script, config, log))
        self.addCleanup(host.run, 'kill $(cat /run/korora-manager.pid)')
        self.addOnException(lambda exc_info: self.addDetail(
            '%s-manager.log' % host.name, testtools.content.text_content(
                rabbitmq.tail(log, 64 * 1024))))
        self.wait_for_file_text(log, 'serving topic', MANAGER_START_TIMEOUT)
        return log

    def wait_for_file_text(self, path, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in rabbitmq.tail(path, 1024 * 1024):
                return
            time.sleep(1)
        self.fail('%r not in %s within %.0f s:\n%s' % (
            text, path, timeout, rabbitmq.tail(path)))
