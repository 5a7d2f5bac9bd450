"""The attestation fleet of the verifier and load benchmarks, all in
this one process: a private rabbitmq-server node (tests.fixtures.rabbitmq),
one swtpm per host (EK certificates from a throwaway local CA), a vTPM
manager per host (VTPMManager with its PCR watch, behind its own
oslo.messaging RPC server on topic korora-vtpm-manager, server = the
host's name), the verifier (Verifier with its RPC server on topic
korora-verifier, and an Attestor over the bus) and a SQLite verifier
database. Every host is enrolled over the bus (EK certificate chain, AK
by credential activation) under a reference policy of the PCR values
its manager left after measuring itself, and checked to be trusted.

N manager processes would measure the start-up and scheduling of N
Python interpreters on the machine rather than the verifier; on a real
fleet each manager runs on its own host.
"""

import concurrent.futures
import datetime
import os
import time

from cryptography.hazmat.primitives.asymmetric import ec
from oslo_messaging import conffixture

import machine  # noqa: F401  (benchmarks/machine.py: the path)
from korora_nova.attestation import es256_keys
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import results
from korora_nova import conf as korora_conf
from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova.db import models
from korora_nova import exception
from korora_nova.hypervisors import file_backend
from korora_nova import rpc
from korora_nova.rpcapi import verifier as verifier_rpcapi
from korora_nova.rpcapi import vtpm_manager as manager_rpcapi
from korora_nova.tpm import quote as tpm_quote
from korora_nova.tpm import swtpm
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.verifier import manager as verifier_manager
from korora_nova.vtpm_manager import manager as vtpm_manager
from tests.fixtures import rabbitmq
from tests.fixtures import raw_sql

CONF = korora_conf.CONF
SCHEDULED_INTERVAL = 60
POLICY = 'bench-fleet'
START_WORKERS = 4


class Fleet:
    """The broker, N hosts (swtpm + manager + RPC server), the verifier."""

    def __init__(self, workdir, count, watch_interval, enroll_workers=8):
        """enroll_workers: hosts enrolled at once in the set-up."""
        self.workdir = workdir
        self.names = ['compute-%03d' % i for i in range(1, count + 1)]
        self.watch_interval = watch_interval
        self.enroll_workers = enroll_workers
        self.broker = None
        self.tpms = {}
        self.managers = {}
        self.servers = []
        self.verifier = None

    # Set-up

    def start(self):
        started = time.monotonic()
        self.broker = rabbitmq.RabbitMQFixture()
        self.broker.setUp()
        print('  rabbitmq-server node up at %s in %.1f s'
              % (self.broker.url, time.monotonic() - started), flush=True)
        self._configure()
        migration.db_sync()
        self._start_tpms()
        self._start_managers()
        self._start_verifier()
        self._enroll()

    def _configure(self):
        # rpc.get_transport reads [DEFAULT] transport_url before
        # oslo.messaging registers it: register oslo.messaging's options.
        conffixture.ConfFixture(CONF)
        CONF.set_override('transport_url', self.broker.url)
        CONF.set_override('connection', 'sqlite:///%s' % os.path.join(
            self.workdir, 'korora.sqlite'), group='korora_database')
        # The verifier's signing key; every manager pins its public half.
        private = os.path.join(self.workdir, 'verifier-signing-key.pem')
        public = os.path.join(self.workdir, 'verifier-public-key.pem')
        self.signer = results.generate_signing_key(private)
        results.write_public_key(self.signer, public)
        CONF.set_override('verifier_signing_key', private, group='korora')
        CONF.set_override('verifier_public_keys', [public], group='korora')
        CONF.set_override('attestation_interval', SCHEDULED_INTERVAL,
                          group='korora')
        CONF.set_override('ek_ca_bundle', os.path.join(
            self.workdir, 'ek-ca-bundle.pem'), group='korora')
        if self.watch_interval is not None:
            CONF.set_override('pcr_watch_interval', self.watch_interval,
                              group='korora')

    def _start_tpms(self):
        ca = swtpm.LocalCA(os.path.join(self.workdir, 'ek-ca'))
        started = time.monotonic()
        # The first TPM creates the CA; the others are made in parallel.
        first = self._start_tpm(ca, self.names[0])
        ca.write_bundle(CONF.korora.ek_ca_bundle)
        with concurrent.futures.ThreadPoolExecutor(START_WORKERS) as pool:
            list(pool.map(lambda name: self._start_tpm(ca, name),
                          self.names[1:]))
        print('  %d swtpm started in %.1f s (first one: %s)'
              % (len(self.tpms), time.monotonic() - started, first.tcti),
              flush=True)

    def _start_tpm(self, ca, name):
        tpm = swtpm.SoftwareTPM(os.path.join(self.workdir, name), ca)
        self.tpms[name] = tpm
        return tpm.start()

    def _start_managers(self):
        started = time.monotonic()
        verifier_api = verifier_rpcapi.VerifierAPI()
        for name in self.names:
            manager = vtpm_manager.VTPMManager(
                CONF, host=name, tcti=self.tpms[name].tcti,
                state_path=os.path.join(self.workdir, name, 'state'),
                verifier_api=verifier_api,
                state_backend=file_backend.FileStateBackend(
                    os.path.join(self.workdir, 'instances'), name))
            self.managers[name] = manager
            manager.start()
            server = rpc.get_server(CONF.korora.manager_topic, name,
                                    [vtpm_manager.BusEndpoint(manager)])
            server.start()
            self.servers.append(server)
        print('  %d vTPM managers measured themselves and serve (%.1f s, '
              'pcr_watch_interval %.2f s)'
              % (len(self.managers), time.monotonic() - started,
                 CONF.korora.pcr_watch_interval), flush=True)

    def _start_verifier(self):
        self.attestor = attestation.Attestor(
            manager_rpcapi.VTPMManagerAPI(self.signer))
        self.verifier = verifier_manager.Verifier(CONF, self.attestor)
        server = rpc.get_server(CONF.korora.verifier_topic, 'benchmark',
                                [self.verifier])
        server.start()
        self.servers.append(server)

    def _enroll(self):
        started = time.monotonic()
        # The reference policy: what the managers left in their PCRs.
        golden = {}
        for manager in self.managers.values():
            for bank, pcrs in tpm_quote.read_pcrs(
                    manager.connection, manager.selection).items():
                for index, value in pcrs.items():
                    golden.setdefault(bank, {}).setdefault(
                        str(index), set()).add(value.hex())
        # Signed by an operator key the verifier trusts: an unsigned
        # policy would leave every host untrusted.
        operator = ec.generate_private_key(ec.SECP256R1())
        operator_public = os.path.join(self.workdir, 'operator-key.pub.pem')
        with open(operator_public, 'wb') as stream:
            stream.write(es256_keys.public_pem(operator.public_key()))
        CONF.set_override('policy_signing_keys', [operator_public],
                          group='korora')
        reference = policy_module.from_json({
            'name': POLICY, 'version': 1,
            'pcrs': {bank: {index: sorted(values)
                            for index, values in pcrs.items()}
                     for bank, pcrs in golden.items()}})
        db.policy_create(reference,
                         signature=policy_module.sign(reference, operator))
        api = manager_rpcapi.VTPMManagerAPI(self.signer)
        with concurrent.futures.ThreadPoolExecutor(
                self.enroll_workers) as pool:
            list(pool.map(lambda name: enrollment.enroll(api, name, POLICY),
                          self.names))
        self.round()
        self.check_all_trusted()
        print('  %d hosts enrolled (EK chain, credential activation) and '
              'attested trusted in %.1f s'
              % (len(self.names), time.monotonic() - started), flush=True)

    # Measurements

    def make_all_due(self):
        with raw_sql.session() as session:
            session.query(models.Host).update(
                {'next_attestation_at': db.utcnow()})

    def postpone_all(self, seconds):
        """No host is due for a scheduled attestation for a while."""
        with raw_sql.session() as session:
            session.query(models.Host).update(
                {'next_attestation_at': db.utcnow() + datetime.timedelta(
                    seconds=seconds)})

    def round(self):
        """One scheduled round over every host: (seconds, hosts)."""
        self.make_all_due()
        started = time.monotonic()
        attested = 0
        while attested < len(self.names):
            count = self.verifier.run_due()   # at most 100 per call
            if not count:
                break
            attested += count
        return time.monotonic() - started, attested

    def check_all_trusted(self):
        trust = db.host_trust_all()
        bad = sorted(name for name in self.names
                     if not trust.get(name, (False,))[0])
        if bad:
            raise exception.KororaError(
                '%d hosts are not trusted, e.g. %s: %s'
                % (len(bad), bad[0], trust.get(bad[0], (None, 'no '
                                                        'verdict'))[1]))

    # Tear-down

    def stop(self):
        if self.verifier is not None:
            self.verifier.stop()
        # Each server takes about a second to stop: all at once.
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            for future in [pool.submit(_stop_server, server)
                           for server in self.servers]:
                error = future.exception()
                if error is not None:     # keep cleaning up
                    print('  stopping an RPC server: %s' % error)
        for manager in self.managers.values():
            manager.stop()
        for tpm in self.tpms.values():
            if tpm.pid is None:
                tpm.pid = _read_pid(os.path.join(tpm.state_dir,
                                                 'swtpm.pid'))
            tpm.stop()
        rpc.cleanup()
        db.dispose()
        if self.broker is not None:
            self.broker.cleanUp()


def _stop_server(server):
    server.stop()
    server.wait()


def _read_pid(path):
    try:
        with open(path) as stream:
            return int(stream.read().strip())
    except (OSError, ValueError):
        return None
