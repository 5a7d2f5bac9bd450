"""Real parts started in this process: software TPMs on free ports, the
verifier, vTPM managers; for the demo and the tests alike.

Each SoftwareTPMFixture is a TPM of its own (own state folder, own ports),
so tests run in parallel without sharing one. The EK CA is made once per
test process: swtpm_localca takes about a second to create it.
"""

import atexit
import os
import shutil
import tempfile
import threading

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization
import fixtures

from korora_nova.attestation import ek_certificate
from korora_nova.attestation import policy as policy_module
from korora_nova.tpm import attestation_key
from korora_nova.tpm import connection
from korora_nova.tpm import endorsement
from korora_nova.tpm import swtpm

EK_TYPES = ['EK-RSA2048', 'EK-ECC256']
AK_HANDLE = 0x81010020

# oslotest gives every test a temporary folder of its own and removes it
# afterwards: the process-wide CA lives in the real one.
_PROCESS_TMP = tempfile.gettempdir()
_ca_lock = threading.Lock()
_ca = {}


def shared_ca():
    """The process's EK CA (created on first use, removed at exit)."""
    with _ca_lock:
        if 'ca' not in _ca:
            directory = tempfile.mkdtemp(prefix='korora-test-ca-',
                                         dir=_PROCESS_TMP)
            _ca['ca'] = swtpm.LocalCA(directory)
            atexit.register(shutil.rmtree, directory, True)
        return _ca['ca']


class SoftwareTPMFixture(fixtures.Fixture):
    """A started swtpm with EK certificates, and a connection to it.

    Attributes: tpm (SoftwareTPM), connection (TPMConnection), ca
    (LocalCA), ca_bundle (path of the PEM bundle), anchors (certificates).
    """

    def __init__(self, ca=None):
        super().__init__()
        self.ca = ca

    def _setUp(self):
        self.ca = self.ca or shared_ca()
        state = self.useFixture(fixtures.TempDir()).path
        self.tpm = swtpm.SoftwareTPM(os.path.join(state, 'tpm'), self.ca)
        self.tpm.start()
        self.addCleanup(self.tpm.stop)
        self.connection = connection.TPMConnection(self.tpm.tcti)
        self.addCleanup(self.connection.close)
        self.ca_bundle = self.ca.write_bundle(
            os.path.join(state, 'ek-ca-bundle.pem'))
        self.anchors = ek_certificate.load_bundle(self.ca_bundle)

    def attestation_key(self, algorithm='ecdsa-p256-sha256',
                        handle=AK_HANDLE):
        return attestation_key.AttestationKey(self.connection, algorithm,
                                              handle)

    def endorsement(self):
        return endorsement.read_endorsement(self.connection, EK_TYPES)


class VerifierDatabaseFixture(fixtures.Fixture):
    """A fresh SQLite verifier database, schema synced, set as
    [korora_database] connection until cleanup."""

    def _setUp(self):
        from korora_nova import conf
        from korora_nova.db import api as db
        from korora_nova.db import migration

        folder = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(folder, 'korora.sqlite')
        conf.CONF.set_override('connection', 'sqlite:///' + self.path,
                               group='korora_database')
        self.addCleanup(conf.CONF.clear_override, 'connection',
                        group='korora_database')
        self.addCleanup(db.dispose)
        migration.db_sync()


class VerifierKeysFixture(fixtures.Fixture):
    """A verifier signing key of the test's own (mode 0600) and its
    public key, set as [korora] verifier_signing_key and
    verifier_public_keys until cleanup. Attributes: signer (SigningKey),
    private_path, public_path. Reused when the test set one already."""

    def _setUp(self):
        from korora_nova.attestation import results
        from korora_nova import conf

        folder = self.useFixture(fixtures.TempDir()).path
        self.private_path = os.path.join(folder, 'verifier-signing-key.pem')
        self.public_path = os.path.join(folder, 'verifier-public-key.pem')
        self.signer = results.generate_signing_key(self.private_path)
        results.write_public_key(self.signer, self.public_path)
        for name, value in (('verifier_signing_key', self.private_path),
                            ('verifier_public_keys', [self.public_path])):
            conf.CONF.set_override(name, value, group='korora')
            self.addCleanup(conf.CONF.clear_override, name, group='korora')


def verifier_keys(test):
    """The test's verifier keys: the ones set already, else new ones."""
    keys = getattr(test, 'verifier_keys', None)
    if keys is None:
        keys = test.useFixture(VerifierKeysFixture())
        test.verifier_keys = keys
    return keys


class VerifierFixture(fixtures.Fixture):
    """korora-verifier's endpoint on [DEFAULT] transport_url, signing
    with signer (its schedule off: tests decide when rounds run).
    Attributes: verifier, attestor, manager_api."""

    def __init__(self, signer, notifier=None, server='verifier-1'):
        super().__init__()
        self.signer = signer
        self.notifier = notifier
        self.server_name = server

    def _setUp(self):
        from korora_nova import conf
        from korora_nova import rpc
        from korora_nova.verifier import attestation
        from korora_nova.verifier import manager
        from korora_nova.verifier import migrations
        from korora_nova.rpcapi import vtpm_manager as rpcapi

        self.manager_api = rpcapi.VTPMManagerAPI(self.signer)
        self.attestor = attestation.Attestor(self.manager_api, self.notifier)
        self.verifier = manager.Verifier(
            conf.CONF, self.attestor,
            migrations.MigrationSteps(conf.CONF, self.attestor,
                                      self.manager_api, self.signer))
        self.server = rpc.get_server(conf.CONF.korora.verifier_topic,
                                     self.server_name, [self.verifier])
        self.server.start()
        self.running = True
        self.addCleanup(self.stop)

    def stop(self):
        """Stop answering (a verifier that went away); idempotent."""
        if self.running:
            self.running = False
            self.server.stop()
            self.server.wait()
            self.verifier.stop()


class HookServerFixture(fixtures.Fixture):
    """korora-vtpm-manager's answers to korora-libvirt-hook
    (hook_server.HookServer) for host, on a socket in a new folder
    (attribute path) unless path is given.

    conf: the options it reads ([korora] libvirt_hook_*,
    [korora_database]); by default options of its own, with connection
    ([korora_database]) and korora ([korora] options) set.
    """

    def __init__(self, host, conf=None, path=None, connection=None,
                 manager=None, **korora):
        super().__init__()
        self.host = host
        self.conf = conf
        self.path = path
        self.connection = connection
        self.manager = manager
        self.korora = korora

    def _setUp(self):
        from oslo_config import cfg

        from korora_nova import conf as korora_conf

        if self.conf is None:
            self.conf = cfg.ConfigOpts()
            korora_conf.korora.register_opts(self.conf)
            korora_conf.register_host_opt(self.conf)
            self.conf([])
            if self.connection:
                self.conf.set_override('connection', self.connection,
                                       group='korora_database')
            for name, value in self.korora.items():
                self.conf.set_override(name, value, group='korora')
        if self.path is None:
            folder = self.useFixture(fixtures.TempDir()).path
            self.path = os.path.join(folder, 'run', 'libvirt-hook.sock')
        self.server = None
        self.start()
        self.addCleanup(self.stop)

    def start(self):
        """Answer on path (again, after stop: a restarted manager)."""
        from korora_nova.vtpm_manager import hook_server

        if self.server is None:
            self.server = hook_server.HookServer(self.conf, self.host,
                                                 self.path, self.manager)
            self.server.start()

    def stop(self):
        """Stop answering: the socket is gone; idempotent."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()


class VTPMManagerFixture(fixtures.Fixture):
    """A running vTPM manager for one simulated compute host: its own
    swtpm, its own state folder, an RPC server on [DEFAULT]
    transport_url, and its UNIX socket for the libvirt hook and
    nova-compute (attribute hook_socket).

    It pins the verifier keys of [korora] verifier_public_keys (set them
    first, with VerifierKeysFixture) and measures instances with
    state_backend (default: a FileStateBackend of its own).
    """

    def __init__(self, host, tpm=None, verifier_api=None, state_path=None,
                 state_backend=None, tcti=None):
        """tcti: how the manager reaches the TPM, if not straight (the
        slow-TPM proxy, korora_nova.demo.slow_tpm)."""
        super().__init__()
        self.host = host
        self.tcti = tcti
        self.tpm_fixture = tpm
        self.verifier_api = verifier_api
        self.state_path = state_path
        self.state_backend = state_backend

    def _setUp(self):
        from korora_nova import conf
        from korora_nova.hypervisors import file_backend
        from korora_nova import rpc
        from korora_nova.vtpm_manager import manager

        if not all(os.path.exists(path) for path in
                   conf.CONF.korora.verifier_public_keys):
            # Keys of its own, when the test set none.
            self.useFixture(VerifierKeysFixture())
        if self.tpm_fixture is None:
            self.tpm_fixture = self.useFixture(SoftwareTPMFixture())
        # The manager owns the TPM: the fixture's own connection steps back.
        self.tpm_fixture.connection.close()
        self.state_path = (self.state_path or
                           self.useFixture(fixtures.TempDir()).path)
        if self.state_backend is None:
            self.state_backend = file_backend.FileStateBackend(
                os.path.join(self.state_path, 'instances'), self.host)
        self.manager = manager.VTPMManager(
            conf.CONF, host=self.host,
            tcti=self.tcti or self.tpm_fixture.tpm.tcti,
            state_path=self.state_path, verifier_api=self.verifier_api,
            state_backend=self.state_backend)
        self.manager.start()
        self.server = rpc.get_server(conf.CONF.korora.manager_topic,
                                     self.host,
                                     [manager.BusEndpoint(self.manager)])
        self.server.start()
        self.hook_server = self.useFixture(
            HookServerFixture(self.host, conf.CONF, manager=self.manager))
        self.hook_socket = self.hook_server.path
        self.running = True
        self.addCleanup(self.stop)

    def stop(self):
        """Stop the manager (a host whose agent died); idempotent."""
        if self.running:
            self.running = False
            self.hook_server.stop()
            self.server.stop()
            self.server.wait()
            self.manager.stop()

    def extend_pcr(self, index, data):
        """A change on the host: extend a PCR through the manager's own
        connection (swtpm serves one client at a time)."""
        from korora_nova.tpm import quote

        return quote.extend_pcr(self.manager.connection, 'sha256', index,
                                data)


class SlowTPMFixture(fixtures.Fixture):
    """A started slow-TPM proxy (korora_nova.demo.slow_tpm) in front of
    the swtpm of tpm (a SoftwareTPMFixture); attribute slow (SlowTPM)."""

    def __init__(self, tpm, scale=1.0):
        super().__init__()
        self.tpm = tpm
        self.scale = scale

    def _setUp(self):
        from korora_nova.demo import slow_tpm

        self.slow = slow_tpm.SlowTPM(
            self.tpm.tpm.port, self.useFixture(fixtures.TempDir()).path,
            self.scale)
        self.slow.start()
        self.addCleanup(self.slow.stop)


class InProcessBusFixture(fixtures.Fixture):
    """oslo.messaging's in-process 'fake' driver as [DEFAULT]
    transport_url, and korora's cached transports dropped afterwards."""

    def __init__(self, conf):
        super().__init__()
        self.conf = conf

    def _setUp(self):
        from oslo_messaging import conffixture

        from korora_nova import rpc

        messaging = self.useFixture(conffixture.ConfFixture(self.conf))
        messaging.transport_url = 'fake:/'
        self.addCleanup(rpc.cleanup)


class OperatorKeyFixture(fixtures.Fixture):
    """A new operator key pair; trusted (added to [korora]
    policy_signing_keys) unless trusted=False.

    Attributes: key (private key), private_path, public_path, key_id.
    """

    def __init__(self, conf, trusted=True):
        super().__init__()
        self.conf = conf
        self.trusted = trusted

    def _setUp(self):
        folder = self.useFixture(fixtures.TempDir()).path
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.private_path = os.path.join(folder, 'operator-key.pem')
        self.public_path = os.path.join(folder, 'operator-key.pub.pem')
        with open(self.private_path, 'wb') as stream:
            stream.write(self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        with open(self.public_path, 'wb') as stream:
            stream.write(self.key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo))
        self.key_id = policy_module.key_id(self.key.public_key())
        if self.trusted:
            self.trust()

    def trust(self):
        keys = list(self.conf.korora.policy_signing_keys)
        if self.public_path not in keys:
            self.conf.set_override('policy_signing_keys',
                                   keys + [self.public_path], 'korora')
            self.addCleanup(self.conf.clear_override,
                            'policy_signing_keys', 'korora')

    def sign(self, reference):
        return policy_module.sign(reference, self.key)
