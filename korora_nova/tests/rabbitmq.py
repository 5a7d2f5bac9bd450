"""A private RabbitMQ node for tests and benchmarks.

``RabbitMQFixture`` starts Debian's rabbitmq-server (no systemd) as a node
of its own: its own node name (``korora-<pid>-<n>@localhost``), free
loopback ports for AMQP and Erlang distribution, and every file it writes
(Mnesia database, logs, pid file, enabled plugins, Erlang cookie) in a
temporary folder, so nothing global is read or touched and several test
processes can each run one. The guest user may log in over loopback,
which is all oslo.messaging needs: ``fixture.url`` is
``rabbit://guest:guest@127.0.0.1:PORT/``.

Starting a node takes about ten seconds, so tests share one per process:
``shared_broker()`` starts it on first use and stops it at exit.

The node runs in the foreground under rabbitmq-server's own script, whose
pid is the one started here; stopping sends it SIGTERM (the script stops
the Erlang VM and waits for it), then SIGKILL to the script and to the VM
(by the pid in the node's pid file) if they do not exit in time. epmd,
which the VM starts when none runs, is shared by every Erlang node on the
machine and is left running. Should the process that started the node die
without cleaning up, the kernel sends the script SIGTERM
(PR_SET_PDEATHSIG), so no VM of ours outlives it.
"""

import atexit
import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import fixtures

SERVER_SCRIPT = '/usr/lib/rabbitmq/bin/rabbitmq-server'
# Not /usr/sbin/rabbitmqctl: as root that wrapper switches to the rabbitmq
# user, whose $HOME holds another Erlang cookie than our node's.
CTL_SCRIPT = '/usr/lib/rabbitmq/bin/rabbitmqctl'
CTL_TIMEOUT = 60.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LOG_TAIL = 4000
# AMQP 0-9-1 protocol header; a broker answers it with Connection.Start.
AMQP_HEADER = b'AMQP\x00\x00\x09\x01'
PR_SET_PDEATHSIG = 1

# oslotest points tempfile at a per-test folder that is removed when the
# test ends: a shared node lives in the process's real temporary folder.
_PROCESS_TMP = tempfile.gettempdir()
_counter = itertools.count(1)


class BrokerError(Exception):
    """The node did not start, or died."""


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent():
    """preexec_fn: the child gets SIGTERM when the thread that started it
    exits (Linux PR_SET_PDEATHSIG), so a killed test run leaves no
    daemon behind. Start such children from a long-lived thread (the main
    one). Nothing is imported or looked up after the fork.
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path, size=LOG_TAIL):
    """The last size bytes of a text file, or why it cannot be read."""
    try:
        with open(path, 'rb') as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - size))
            return stream.read().decode('utf-8', 'replace')
    except OSError as error:
        return '(%s: %s)' % (path, error.strerror)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open('/proc/%d/stat' % pid) as stream:
            return stream.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False


class RabbitMQFixture(fixtures.Fixture):
    """A started rabbitmq-server node on free loopback ports.

    Attributes after setUp: url, port, dist_port, node_name, directory,
    pid (of the rabbitmq-server script), beam_pid (of the Erlang VM).
    """

    def __init__(self, start_timeout=START_TIMEOUT, server=SERVER_SCRIPT):
        super().__init__()
        self.start_timeout = start_timeout
        self.server = server
        self.process = None
        self.beam_pid = None
        self.directory = None

    # Where things are

    @property
    def url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/' % self.port

    @property
    def pid(self):
        return self.process.pid if self.process else None

    @property
    def console_log(self):
        return os.path.join(self.directory, 'console.log')

    @property
    def node_log(self):
        return os.path.join(self.directory, 'log', '%s.log' % self.node_name)

    @property
    def pid_file(self):
        return os.path.join(self.directory, 'rabbitmq.pid')

    def log_tail(self, size=LOG_TAIL):
        """The end of the node's log and of its console output."""
        return ('--- %s ---\n%s\n--- %s ---\n%s' % (
            self.node_log, tail(self.node_log, size),
            self.console_log, tail(self.console_log, size)))

    def alive(self):
        return self.process is not None and self.process.poll() is None

    # Life cycle

    def _setUp(self):
        # Not oslotest's per-test folder: a shared node outlives tests.
        self.directory = tempfile.mkdtemp(prefix='korora-rabbitmq-',
                                          dir=_PROCESS_TMP)
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.node_name = 'korora-%d-%d@localhost' % (os.getpid(),
                                                     next(_counter))
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self.addCleanup(self.stop)
        self._start()
        self._wait_until_answering()

    def _environment(self):
        d = self.directory
        for name in ('enabled_plugins', 'rabbitmq-env.conf'):
            open(os.path.join(d, name), 'w').close()
        env = dict(os.environ)
        env.update({
            # The Erlang cookie goes to $HOME/.erlang.cookie.
            'HOME': d,
            'RABBITMQ_NODENAME': self.node_name,
            'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
            'RABBITMQ_NODE_PORT': str(self.port),
            'RABBITMQ_DIST_PORT': str(self.dist_port),
            'RABBITMQ_MNESIA_BASE': os.path.join(d, 'mnesia'),
            'RABBITMQ_LOG_BASE': os.path.join(d, 'log'),
            'RABBITMQ_PID_FILE': self.pid_file,
            'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(
                d, 'enabled_plugins'),
            # Neither /etc/rabbitmq/rabbitmq-env.conf nor rabbitmq.conf.
            'RABBITMQ_CONF_ENV_FILE': os.path.join(d, 'rabbitmq-env.conf'),
            'RABBITMQ_CONFIG_FILE': os.path.join(d, 'rabbitmq'),
            'RABBITMQ_ADVANCED_CONFIG_FILE': os.path.join(d,
                                                          'advanced.config'),
            'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS':
                '-kernel inet_dist_use_interface {127,0,0,1}',
        })
        for name in ('RABBITMQ_ALLOW_INPUT', 'NOTIFY_SOCKET'):
            env.pop(name, None)
        return env

    def _start(self):
        if not os.access(self.server, os.X_OK):
            raise BrokerError('%s is missing: install rabbitmq-server'
                              % self.server)
        env = self._environment()
        with open(self.console_log, 'wb') as console:
            # In the foreground, without an Erlang shell: the script stays
            # the VM's parent and turns SIGTERM into a clean stop.
            self.process = subprocess.Popen(
                [self.server], env=env, cwd=self.directory,
                stdin=subprocess.DEVNULL, stdout=console,
                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    def _wait_until_answering(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(
                    'rabbitmq-server node %s exited (status %s) before its '
                    'AMQP port %d answered:\n%s'
                    % (self.node_name, self.process.returncode, self.port,
                       self.log_tail()))
            if self._answers():
                self.beam_pid = self._read_beam_pid()
                return
            time.sleep(0.2)
        raise BrokerError(
            'rabbitmq-server node %s did not answer on AMQP port %d within '
            '%.0f s:\n%s' % (self.node_name, self.port, self.start_timeout,
                             self.log_tail()))

    def _answers(self):
        """True once the AMQP listener greets a client."""
        try:
            with socket.create_connection(('127.0.0.1', self.port),
                                          timeout=2) as sock:
                sock.sendall(AMQP_HEADER)
                # Frame type 1 (method) on channel 0: Connection.Start.
                return sock.recv(3) == b'\x01\x00\x00'
        except OSError:
            return False

    def _read_beam_pid(self):
        try:
            with open(self.pid_file) as stream:
                return int(stream.read().strip())
        except (OSError, ValueError):
            return None

    def ctl(self, *args, timeout=CTL_TIMEOUT):
        """Run rabbitmqctl against this node (its name, its cookie);
        return its output, or raise BrokerError with what it said."""
        command = [CTL_SCRIPT, '-n', self.node_name] + list(args)
        try:
            done = subprocess.run(
                command, env=self._environment(), cwd=self.directory,
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BrokerError('%s did not finish within %.0f s'
                              % (' '.join(command), timeout))
        if done.returncode != 0:
            raise BrokerError('%s failed (status %d): %s%s' % (
                ' '.join(command), done.returncode, done.stdout,
                done.stderr))
        return done.stdout

    def trace_on(self, vhost='/'):
        """Turn the firehose on: the node republishes every message
        published and delivered in vhost on exchange amq.rabbitmq.trace.
        """
        self.ctl('trace_on', '-p', vhost)

    def trace_off(self, vhost='/'):
        self.ctl('trace_off', '-p', vhost)

    def stop(self):
        """Stop the node; SIGKILL what does not exit within the bound."""
        if self.process is None:
            return
        beam_pid = self.beam_pid or self._read_beam_pid()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if beam_pid is not None:
            deadline = time.monotonic() + STOP_TIMEOUT
            while _alive(beam_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(beam_pid) and self._is_our_beam(beam_pid):
                os.kill(beam_pid, signal.SIGKILL)
        self.process = None
        self.beam_pid = None

    def _is_our_beam(self, pid):
        """The pid still runs our node (and not a recycled pid)."""
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as stream:
                command = stream.read()
        except OSError:
            return False
        return b'beam' in command and self.directory.encode() in command


_shared_lock = threading.Lock()
_shared = {}


def shared_broker():
    """The test process's broker: started on first use, stopped at exit.

    A node that died is replaced by a new one (on new ports).
    """
    with _shared_lock:
        broker = _shared.get('broker')
        if broker is not None and not broker.alive():
            broker.cleanUp()
            broker = None
        if broker is None:
            broker = RabbitMQFixture()
            broker.setUp()
            _shared['broker'] = broker
            if not _shared.get('atexit'):
                atexit.register(_stop_shared)
                _shared['atexit'] = True
        return broker


def _stop_shared():
    with _shared_lock:
        broker = _shared.pop('broker', None)
    if broker is not None:
        broker.cleanUp()
