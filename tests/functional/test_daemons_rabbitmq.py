"""korora's daemons end to end over a real RabbitMQ broker.

Two compute hosts, compute-1 and compute-2, each with a software TPM
(swtpm, EK certificate from the test CA), a configuration file of its own
and its own ``korora-vtpm-manager`` process; one ``korora-verifier``
process; the operator's ``korora-manage``. All are the installed console
scripts run as subprocesses, talking through a private rabbitmq-server
node (tests.fixtures.rabbitmq) and sharing the verifier's SQLite
database. What the tests assert is what an operator sees: ``korora-manage``
output and exit codes, backed by the database the scheduler filter reads.

How the reference policy is built: the golden PCR values are taken from
quotes the verifier itself verified, as an operator records them from a
known-good host. Hosts are enrolled under a bootstrap version 1 of policy
compute-fleet that allows nothing (PCR 10 all zeros, which a host whose
vTPM manager measured itself never has). The verifier attests newly
enrolled hosts at once; their verdicts are untrusted for the policy
alone, but the quotes are verified (EK certificate chain, AK bound by
credential activation, signature, nonce, PCR digest), and every verdict
row keeps the PCR values that quote proved (``verdicts.pcr_values``).
Version 2 allows exactly those values (each host's PCR 10 differs: the
manager's measurement covers its configuration), and version 1 is
deactivated. Reading the PCRs over a second TPM connection would work too
(see below) but would trust an unauthenticated read.

Can a test touch a TPM whose vTPM manager is running? Yes: swtpm serves
one client connection at a time, but the swtpm TCTI of tpm2-tss opens a
connection per command and closes it after the response, so an idle
manager holds no connection and a second client (``tpm2_pcrextend`` here)
is served between the manager's commands. The PCR change is made that
way, with the manager running, so that its PCR watch sees it.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import fixtures
import oslo_messaging as messaging
from oslo_config import cfg
from oslo_messaging import conffixture
from testtools import content

import jwt

from korora_nova.attestation import pcr_values
from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova.db import api as db
from korora_nova import rpc
from tests import base
from korora_nova.demo import services
from tests.fixtures import daemons
from tests.fixtures import hook_process
from tests.fixtures import rabbitmq
from korora_nova.tpm import quote as tpm_quote

HOSTS = ('compute-1', 'compute-2')
POLICY = 'compute-fleet'
# [korora] pcr_selection's default, left unset in the files: a value with
# several PCRs per bank cannot be written there (oslo.config splits a
# ListOpt at every comma).
SELECTION = 'sha256:0,1,2,3,4,5,6,7,10'
MEASURED_PCR = 10
ATTESTATION_INTERVAL = 2
ATTESTATION_TIMEOUT = 2.0
TRUST_TTL = 30
PCR_WATCH_INTERVAL = 0.1
MANAGER_TOPIC = 'korora-vtpm-manager'
TRUST_EVENT = 'korora.host.trust.update'
WAIT = 30.0             # every wait of these tests is bounded by this
COMMAND_TIMEOUT = 60.0
LOG_DETAIL_SIZE = 64 * 1024


class RogueManager:
    """Answers the verifier in compute-1's name, without its TPM.

    'replay': compute-1's own last trusted quote, recorded by the
    verifier (genuine signature, old nonce). 'other-tpm': a fresh quote
    over the verifier's nonce, made by compute-2's TPM with its AK (a
    genuine TPM and PCR values the policy allows, but not compute-1's
    enrolled AK).
    """

    target = messaging.Target(version='2.0')

    def __init__(self, old_quote, other_tpm):
        self.old_quote = old_quote
        self.other_tpm = other_tpm
        self.mode = 'replay'
        self.answered = []

    def attest(self, ctxt, challenge):
        self.answered.append(self.mode)
        if self.mode == 'replay':
            return self.old_quote
        # The challenge is signed, not secret: the rogue reads its nonce.
        claims = jwt.decode(challenge, options={'verify_signature': False})
        made = tpm_quote.quote(
            self.other_tpm.connection, self.other_tpm.attestation_key(),
            pcr_values.parse_selection([SELECTION]),
            purpose.qualifying_data(purpose.ATTEST, results.nonce_bytes(
                claims['eat_nonce'])))
        return {'message': rpc.encode(made.message),
                'signature': rpc.encode(made.signature),
                'pcr_values': pcr_values.to_json(made.pcr_values)}


class TrustEvents:
    """Notification endpoint: every korora.host.trust.update seen."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        if event_type == TRUST_EVENT:
            with self.lock:
                self.events.append((publisher_id, payload))

    def seen(self, predicate):
        with self.lock:
            return [e for e in self.events if predicate(*e)]


class DaemonsOverRabbitMQTest(base.TestCase):
    """Verifier, vTPM managers and korora-manage over a real broker."""

    def setUp(self):
        super().setUp()
        self.timeline = []
        self.started = time.monotonic()
        self.step('setUp')
        self.broker = rabbitmq.shared_broker()
        self.step('broker ready at %s' % self.broker.url)
        self.logs = {}
        self.daemons = {}
        self.addOnException(self._attach_logs)
        self.workdir = self.useFixture(fixtures.TempDir()).path
        self.logs['korora-manage'] = os.path.join(self.workdir,
                                                  'korora-manage.log')
        # This test's notifications only: the broker outlives the test.
        self.notification_topic = 'korora-test-%s' % uuid.uuid4().hex[:8]
        self.database = 'sqlite:///%s' % os.path.join(self.workdir,
                                                      'korora.sqlite')
        self.config.config(connection=self.database,
                           group='korora_database')
        self.addCleanup(db.dispose)
        self.tpms = {host: self.useFixture(
            services.SoftwareTPMFixture()) for host in HOSTS}
        self.step('software TPMs started')
        self.signing_key = os.path.join(self.workdir, 'verifier-key.pem')
        self.public_key = os.path.join(self.workdir, 'verifier-public.pem')
        # The operator's key: korora-manage signs with it, the verifier
        # trusts its public half.
        self.operator = self.useFixture(services.OperatorKeyFixture(
            self.config.conf, trusted=False))
        self.verifier_conf = self._write_verifier_config()
        self.manager_confs = {host: self._write_manager_config(host)
                              for host in HOSTS}
        self._bring_up_and_enroll()

    # Configuration

    def _common(self, host):
        return {
            'DEFAULT': {'host': host, 'transport_url': self.broker.url},
            'oslo_messaging_notifications': {
                'driver': 'messagingv2',
                'topics': self.notification_topic},
        }

    def _write_verifier_config(self):
        sections = self._common('verifier')
        sections['korora'] = {
            'ek_ca_bundle': self.tpms['compute-1'].ca_bundle,
            'attestation_interval': ATTESTATION_INTERVAL,
            'attestation_timeout': ATTESTATION_TIMEOUT,
            'trust_ttl': TRUST_TTL,
            'state_path': os.path.join(self.workdir, 'verifier'),
            'verifier_signing_key': self.signing_key,
            'verifier_public_keys': self.public_key,
            'policy_signing_keys': self.operator.public_path,
        }
        sections['korora_database'] = {'connection': self.database}
        return daemons.write_config(
            os.path.join(self.workdir, 'verifier.conf'), sections)

    def _write_manager_config(self, host):
        sections = self._common(host)
        sections['korora'] = {
            'tcti': self.tpms[host].tpm.tcti,
            'ek_ca_bundle': self.tpms[host].ca_bundle,
            'self_measurement_pcr': MEASURED_PCR,
            'pcr_watch_interval': PCR_WATCH_INTERVAL,
            'state_path': os.path.join(self.workdir, host),
            'libvirt_hook_socket': self.hook_socket(host),
            'verifier_public_keys': self.public_key,
        }
        # No [korora_database]: a compute host holds no credentials.
        return daemons.write_config(
            os.path.join(self.workdir, '%s.conf' % host), sections)

    def hook_socket(self, host):
        return os.path.join(self.workdir, host, 'run', 'libvirt-hook.sock')

    # Processes

    def start_daemon(self, name, script, config_file):
        log_path = os.path.join(self.workdir, '%s.log' % name)
        self.logs[name] = log_path
        daemon = daemons.Daemon(
            name, [daemons.console_script(script), '--config-file',
                   config_file], log_path)
        self.daemons[name] = self.useFixture(daemon)
        self.step('started %s (pid %d)' % (name, daemon.process.pid))
        return daemon

    def run_libvirt_hook(self, path):
        return hook_process.run(
            hook_process.hook_command() + [
                '--socket', path, hook_process.DOMAIN, 'migrate', 'begin',
                '-'], hook_process.xml())

    def step(self, text):
        """Note a phase of the test, with its time (shown on failure)."""
        self.timeline.append('%7.2f s  %s' % (
            time.monotonic() - self.started, text))
        if os.environ.get('KORORA_TEST_TIMELINE'):
            print(self.timeline[-1], file=sys.stderr, flush=True)

    def _attach_logs(self, exc_info):
        """On failure: the timeline, every process's log, the broker's."""
        self.addDetail('timeline', content.text_content(
            '\n'.join(self.timeline)))
        for name, path in sorted(self.logs.items()):
            self.addDetail('log %s' % name, content.text_content(
                rabbitmq.tail(path, LOG_DETAIL_SIZE)))
        self.addDetail('log rabbitmq', content.text_content(
            self.broker.log_tail()))

    def _check_daemons(self):
        for name, daemon in self.daemons.items():
            if not daemon.running() and not daemon.stopped:
                self.fail('%s exited (status %s):\n%s' % (
                    name, daemon.process.returncode,
                    rabbitmq.tail(daemon.log_path)))

    def stop_all_daemons(self):
        """SIGTERM to every daemon at once, then wait for each."""
        for daemon in self.daemons.values():
            daemon.terminate()
        for daemon in self.daemons.values():
            daemon.stop()

    def stop_daemon(self, name):
        daemon = self.daemons[name]
        daemon.stopped = True
        daemon.stop()
        self.step('stopped %s' % name)

    def manage_start(self, *args):
        return subprocess.Popen(
            [daemons.console_script('korora-manage'), '--config-file',
             self.verifier_conf] + list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)

    def manage_finish(self, process, args):
        try:
            out, err = process.communicate(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            self.fail('korora-manage %s did not finish within %.0f s:\n%s'
                      % (' '.join(args), COMMAND_TIMEOUT, out + err))
        self.step('korora-manage %s: exit %d'
                  % (' '.join(args), process.returncode))
        with open(self.logs['korora-manage'], 'a') as log:
            log.write('$ korora-manage %s\nexit %d\n%s%s\n' % (
                ' '.join(args), process.returncode, out, err))
        return process.returncode, out, err

    def manage(self, *args):
        """Run korora-manage: (exit code, stdout, stderr)."""
        return self.manage_finish(self.manage_start(*args), args)

    def manage_ok(self, *commands):
        """Run korora-manage commands at once; each must exit 0."""
        started = [(self.manage_start(*args), args) for args in commands]
        results = [self.manage_finish(process, args)
                   for process, args in started]
        for args, (code, out, err) in zip(commands, results):
            self.assertEqual(0, code, 'korora-manage %s exited %d:\n%s%s'
                             % (' '.join(args), code, out, err))
        return [out for _, out, _ in results]

    def host_list(self):
        """korora-manage host list as {host: (trust, policy)}."""
        out, = self.manage_ok(('host', 'list'))
        rows = [line.split() for line in out.splitlines()[1:]]
        return {row[0]: (row[1], row[-1]) for row in rows if row}

    # Waiting

    def wait_for(self, what, probe, timeout=WAIT, interval=0.02):
        """Poll probe() until it returns something true; bounded."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                self.step('waited for %s' % what)
                return value
            self._check_daemons()
            if time.monotonic() > deadline:
                self.fail('%s: not within %.0f s (trust now: %s)'
                          % (what, timeout, self._trust_now()))
            time.sleep(interval)

    @staticmethod
    def _trust_now():
        try:
            return db.host_trust_all()
        except Exception as error:    # only for a failure message
            return 'unreadable: %s' % error

    def wait_for_log(self, name, text):
        daemon = self.daemons[name]
        self.wait_for('%r in the log of %s' % (text, name),
                      lambda: text in daemon.log())

    def trust(self, host):
        """(trusted, summary, verified_at), or None before any verdict."""
        return db.host_trust_all().get(host)

    def trusted(self, host):
        """True or False, or None before the host's first verdict."""
        entry = self.trust(host)
        return entry[0] if entry else None

    def latest_verdict(self, host):
        rows = db.verdicts_for_host(host, 1)
        return rows[0] if rows else None

    @staticmethod
    def codes(verdict):
        return sorted({reason['code']
                       for reason in json.loads(verdict.reasons)})

    # Set-up: daemons, enrollment, the reference policy

    def _write_policy(self, version, pcrs):
        path = os.path.join(self.workdir, '%s-v%d.json' % (POLICY, version))
        with open(path, 'w') as stream:
            json.dump({'name': POLICY, 'version': version, 'pcrs': pcrs},
                      stream, indent=2)
        return path

    def _bring_up_and_enroll(self):
        bootstrap = self._write_policy(
            1, {'sha256': {str(MEASURED_PCR): ['00' * 32]}})
        self.manage_ok(('db', 'sync'))
        self.manage_ok(('signing-key', 'create', '--public',
                        self.public_key))
        self.manage_ok(('policy', 'import', bootstrap, '--signing-key',
                        self.operator.private_path))
        self.start_daemon('korora-verifier', 'korora-verifier',
                          self.verifier_conf)
        for host in HOSTS:
            self.start_daemon('manager-%s' % host, 'korora-vtpm-manager',
                              self.manager_confs[host])
        self.addCleanup(self.stop_all_daemons)
        self.wait_for_log('korora-verifier', 'serving topic')
        for host in HOSTS:
            self.wait_for_log('manager-%s' % host, 'serving topic')

        outputs = self.manage_ok(*[('host', 'enroll', host, '--policy',
                                    POLICY) for host in HOSTS])
        for host, out in zip(HOSTS, outputs):
            self.assertIn('%s enrolled' % host, out)
            self.assertNotIn('trust on first use', out)

        # The verifier attests a newly enrolled host at once.
        golden = {}
        for host in HOSTS:
            verdict = self.wait_for(
                'a first verdict with verified PCR values for %s' % host,
                lambda: self._verified_values_verdict(host))
            self.assertEqual(['pcr-policy'], self.codes(verdict),
                             verdict.summary)
            for bank, pcrs in json.loads(verdict.pcr_values).items():
                for index, value in pcrs.items():
                    golden.setdefault(bank, {}).setdefault(
                        index, set()).add(value)
        self.golden = {bank: {index: sorted(values)
                              for index, values in pcrs.items()}
                       for bank, pcrs in golden.items()}
        self.assertEqual(2, len(self.golden['sha256'][str(MEASURED_PCR)]),
                         'each host\'s manager measured a configuration of '
                         'its own into PCR %d' % MEASURED_PCR)
        self.manage_ok(('policy', 'import',
                        self._write_policy(2, self.golden),
                        '--signing-key', self.operator.private_path))
        self.manage_ok(('policy', 'deactivate', POLICY, '1'))
        for host in HOSTS:
            self.wait_for('%s trusted under %s v2 by a scheduled round'
                          % (host, POLICY),
                          lambda: self.trusted(host))

    def _verified_values_verdict(self, host):
        verdict = self.latest_verdict(host)
        if verdict is not None and verdict.pcr_values not in (None,
                                                              'null'):
            return verdict
        return None

    # In-process parts on the same broker

    def messaging_conf(self):
        conf = cfg.ConfigOpts()
        conffixture.ConfFixture(conf)   # registers oslo.messaging's options
        return conf

    def start_rogue_manager(self, endpoint, host):
        transport = messaging.get_rpc_transport(self.messaging_conf(),
                                                url=self.broker.url)
        self.addCleanup(transport.cleanup)
        server = messaging.get_rpc_server(
            transport, messaging.Target(topic=MANAGER_TOPIC, server=host),
            [endpoint])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        return server

    def notification_transport(self):
        transport = messaging.get_notification_transport(
            self.messaging_conf(), url=self.broker.url)
        self.addCleanup(transport.cleanup)
        return transport

    def listen_for_trust_events(self):
        events = TrustEvents()
        listener = messaging.get_notification_listener(
            self.notification_transport(),
            [messaging.Target(topic=self.notification_topic)], [events])
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        return events

    def extend_pcr(self, host, data):
        """Extend PCR 10 of the host's TPM beside its running manager.

        Returns the monotonic time right after the extend completed.
        """
        digest = hashlib.sha256(data).hexdigest()
        result = subprocess.run(
            ['tpm2_pcrextend', '-T', self.tpms[host].tpm.tcti,
             '%d:sha256=%s' % (MEASURED_PCR, digest)],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        done = time.monotonic()
        self.assertEqual(0, result.returncode,
                         'tpm2_pcrextend: %s' % result.stderr)
        return done

    def report(self, name, text):
        self.addDetail(name, content.text_content(text))
        print('%s: %s' % (self.id(), text), file=sys.stderr, flush=True)

    # Tests

    def test_pcr_change_untrusts_host_through_the_pcr_watch(self):
        events = self.listen_for_trust_events()
        self.assertEqual({'compute-1': ('trusted', POLICY),
                          'compute-2': ('trusted', POLICY)},
                         self.host_list())
        code, out, err = self.manage('host', 'attest', 'compute-1')
        self.assertEqual(0, code, out + err)
        self.assertIn('compute-1: trusted under policy %s v2' % POLICY, out)

        changed = self.extend_pcr('compute-2', b'unexpected kernel module')
        self.wait_for('compute-2 untrusted after its PCR %d changed'
                      % MEASURED_PCR,
                      lambda: self.trusted('compute-2') is False,
                      interval=0.01)
        latency = time.monotonic() - changed
        self.report('pcr-change-latency',
                    'PCR %d extended on compute-2 -> untrusted in the '
                    'database after %.3f s (pcr_watch_interval %.2f s, '
                    'attestation_interval %d s)'
                    % (MEASURED_PCR, latency, PCR_WATCH_INTERVAL,
                       ATTESTATION_INTERVAL))

        _, summary, _ = self.trust('compute-2')
        self.assertIn('compute-2: PCR sha256:%d = ' % MEASURED_PCR, summary)
        self.assertIn('not allowed by policy %s v2' % POLICY, summary)
        self.assertEqual(['pcr-policy'],
                         self.codes(self.latest_verdict('compute-2')))
        # The event path: the manager's watch saw the change and told the
        # verifier, which attested the host at once.
        self.wait_for_log('manager-compute-2',
                          'PCRs sha256:%d changed' % MEASURED_PCR)
        self.wait_for_log('korora-verifier',
                          'compute-2 attested after a PCR change: '
                          'untrusted')
        self.assertIs(True, self.trusted('compute-1'))
        self.assertEqual({'compute-1': ('trusted', POLICY),
                          'compute-2': ('untrusted', POLICY)},
                         self.host_list())
        # The verifier announced the change on the bus.
        self.wait_for('the verifier\'s trust notification for compute-2',
                      lambda: events.seen(
                          lambda publisher, payload:
                          publisher.startswith('korora-verifier.') and
                          payload.get('host') == 'compute-2' and
                          payload.get('trusted') is False))

        # A forged "trusted" notification reaches the bus, and changes
        # nothing: trust is only ever read from the verifier's database.
        notifier = messaging.Notifier(
            self.notification_transport(), driver='messagingv2',
            publisher_id='korora-verifier.forged',
            topics=[self.notification_topic])
        notifier.info({}, TRUST_EVENT, {
            'host': 'compute-2', 'trusted': True,
            'summary': 'compute-2: trusted under policy %s v2' % POLICY,
            'reasons': [], 'policy': '%s v2' % POLICY,
            'verified_at': db.utcnow().isoformat()})
        self.wait_for('the forged notification on the bus',
                      lambda: events.seen(
                          lambda publisher, payload:
                          publisher == 'korora-verifier.forged'))
        self.assertEqual({'compute-1': ('trusted', POLICY),
                          'compute-2': ('untrusted', POLICY)},
                         self.host_list())
        self.assertIs(False, self.trusted('compute-2'))

    def test_stopped_manager_and_forged_replies_are_untrusted(self):
        # Its libvirt hook is answered while it runs, and not after.
        path = self.hook_socket('compute-1')
        refused = self.run_libvirt_hook(path)
        self.assertEqual(1, refused.status, refused)
        self.assertIn('no Korora-approved migration of instance %s to '
                      'compute-1' % hook_process.INSTANCE, refused.stderr)
        self.stop_daemon('manager-compute-1')
        self.assertFalse(os.path.lexists(path))
        self.assertIn('korora-vtpm-manager does not answer on %s' % path,
                      self.run_libvirt_hook(path).stderr)
        stopped = time.monotonic()
        self.wait_for('compute-1 untrusted at a scheduled round after its '
                      'vTPM manager stopped',
                      lambda: self.trusted('compute-1') is False)
        latency = time.monotonic() - stopped
        verdict = self.latest_verdict('compute-1')
        self.report('unreachable-latency',
                    'vTPM manager of compute-1 stopped -> untrusted in the '
                    'database after %.3f s (attestation_interval %d s, '
                    'attestation_timeout %.0f s): %s'
                    % (latency, ATTESTATION_INTERVAL, ATTESTATION_TIMEOUT,
                       verdict.summary))
        self.assertEqual(['unreachable'], self.codes(verdict))
        self.assertIn('compute-1: no valid quote', verdict.summary)
        self.assertEqual({'compute-1': ('untrusted', POLICY),
                          'compute-2': ('trusted', POLICY)},
                         self.host_list())

        # A rogue server takes compute-1's place on the bus.
        trusted_rows = [row for row in db.verdicts_for_host('compute-1', 50)
                        if row.trusted]
        self.assertTrue(trusted_rows, 'no trusted verdict of compute-1')
        old = trusted_rows[0]
        rogue = RogueManager(
            {'message': rpc.encode(old.quote_message),
             'signature': rpc.encode(old.quote_signature),
             'pcr_values': json.loads(old.pcr_values)},
            self.tpms['compute-2'])
        self.start_rogue_manager(rogue, 'compute-1')

        code, out, err = self.manage('host', 'attest', 'compute-1')
        self.assertEqual(1, code, out + err)
        self.assertIn('untrusted', out)
        self.assertIn('compute-1: nonce mismatch', out)
        self.assertIn('replay', rogue.answered)

        rogue.mode = 'other-tpm'
        code, out, err = self.manage('host', 'attest', 'compute-1')
        self.assertEqual(1, code, out + err)
        self.assertIn('compute-1: signature does not verify with the '
                      'enrolled AK', out)
        # The relayed quote was fresh: only the key gives it away.
        self.assertNotIn('nonce mismatch', out)
        self.assertIn('other-tpm', rogue.answered)

        self.assertEqual({'compute-1': ('untrusted', POLICY),
                          'compute-2': ('trusted', POLICY)},
                         self.host_list())
