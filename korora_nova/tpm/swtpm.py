"""Software TPMs (swtpm) with EK certificates from a local CA.

For the demo, devstack and the tests: each simulated host gets a TPM
manufactured like a real one (EK certificates in NV, signed by a CA the
verifier is told to trust), listening on loopback ports of its own.
"""

import os
import signal
import socket
import subprocess
import time

from oslo_log import log as logging

from korora_nova import exception

LOG = logging.getLogger(__name__)

START_ATTEMPTS = 20
START_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60


def _run(argv, what):
    try:
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise exception.SoftwareTPMError('%s failed: %s' % (what, error))
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        raise exception.SoftwareTPMError(
            '%s failed (exit %d): %s' % (what, result.returncode,
                                         output[-1] if output else ''))
    return result


class LocalCA:
    """A private EK-certificate CA in a folder (swtpm-localca's format).

    swtpm_localca creates the root and the intermediate on first use.
    """

    def __init__(self, directory):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.localca_conf = os.path.join(self.directory, 'swtpm-localca.conf')
        self.setup_conf = os.path.join(self.directory, 'swtpm_setup.conf')
        with open(self.localca_conf, 'w') as conf:
            conf.write('statedir = %(d)s\n'
                       'signingkey = %(d)s/signkey.pem\n'
                       'issuercert = %(d)s/issuercert.pem\n'
                       'certserial = %(d)s/certserial\n'
                       % {'d': self.directory})
        with open(self.setup_conf, 'w') as conf:
            conf.write('create_certs_tool = swtpm_localca\n'
                       'create_certs_tool_config = %s\n'
                       'create_certs_tool_options = '
                       '/etc/swtpm-localca.options\n'
                       'active_pcr_banks = sha256\n' % self.localca_conf)

    @property
    def root_certificate(self):
        return os.path.join(self.directory, 'swtpm-localca-rootca-cert.pem')

    @property
    def issuer_certificate(self):
        return os.path.join(self.directory, 'issuercert.pem')

    def write_bundle(self, path):
        """Write root and intermediate into one PEM bundle for the verifier.
        """
        with open(path, 'wb') as bundle:
            for name in (self.root_certificate, self.issuer_certificate):
                with open(name, 'rb') as pem:
                    bundle.write(pem.read())
        return path


def free_port_pair():
    """Two consecutive free loopback ports (swtpm's TCTI uses P and P+1)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(('127.0.0.1', port + 1))
            except OSError:
                continue
        return port
    raise exception.SoftwareTPMError('no two consecutive free ports')


class SoftwareTPM:
    """One swtpm process with its own state folder."""

    def __init__(self, state_dir, ca):
        self.state_dir = os.path.abspath(state_dir)
        self.ca = ca
        self.port = None
        self.pid = None
        os.makedirs(self.state_dir, exist_ok=True)

    @property
    def tcti(self):
        return 'swtpm:host=127.0.0.1,port=%d' % self.port

    @property
    def manufactured(self):
        return os.path.exists(os.path.join(self.state_dir,
                                           'tpm2-00.permall'))

    def manufacture(self):
        """Create the TPM's state: EKs with certificates, NV locked."""
        _run(['swtpm_setup', '--tpm2', '--tpmstate', self.state_dir,
              '--create-ek-cert', '--create-platform-cert', '--lock-nvram',
              '--overwrite', '--config', self.ca.setup_conf],
             'swtpm_setup for %s' % self.state_dir)

    def start(self):
        if not self.manufactured:
            self.manufacture()
        pid_file = os.path.join(self.state_dir, 'swtpm.pid')
        last_error = None
        for attempt in range(START_ATTEMPTS):
            # A restarted TPM keeps its port, so its clients reconnect.
            port = self.port if (self.port and attempt == 0) else (
                free_port_pair())
            try:
                _run(['swtpm', 'socket', '--tpm2',
                      '--tpmstate', 'dir=%s' % self.state_dir,
                      '--server', 'type=tcp,port=%d,bindaddr=127.0.0.1'
                      % port,
                      '--ctrl', 'type=tcp,port=%d,bindaddr=127.0.0.1'
                      % (port + 1),
                      '--flags', 'not-need-init,startup-clear',
                      '--daemon', '--pid', 'file=%s' % pid_file],
                     'starting swtpm')
            except exception.SoftwareTPMError as error:
                last_error = error      # lost a race for the ports
                continue
            self.port = port
            self.pid = self._wait_for_pid(pid_file)
            LOG.debug('swtpm %s listening on port %d (pid %d)',
                      self.state_dir, port, self.pid)
            return self
        raise last_error

    def _wait_for_pid(self, pid_file):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with open(pid_file) as stream:
                    return int(stream.read().strip())
            except (OSError, ValueError):
                time.sleep(0.02)
        raise exception.SoftwareTPMError(
            'swtpm for %s wrote no pid file' % self.state_dir)

    def stop(self):
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not _running(self.pid):
                break
            time.sleep(0.01)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None


def _running(pid):
    """False once the process exited, even before it is reaped: swtpm
    daemonizes, so its parent is init, which may reap it late."""
    try:
        with open('/proc/%d/stat' % pid) as stat:
            state = stat.read().rpartition(')')[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ('Z', 'X')
