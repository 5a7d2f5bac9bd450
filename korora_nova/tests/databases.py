"""Private PostgreSQL and MariaDB servers, and test databases on them.

``PostgreSQLServer`` runs Debian's PostgreSQL (``postgresql``: initdb and
postgres from /usr/lib/postgresql/N/bin) and ``MariaDBServer`` Debian's
MariaDB (``mariadb-server-core`` and ``mariadb-client-core``:
mariadb-install-db and mariadbd), each as a server of its own: its data,
configuration, sockets, pid file and logs in a temporary folder, listening
on a free loopback port. Neither reads the machine's configuration
(/etc/postgresql, /etc/mysql: initdb writes the cluster's own, mariadbd
runs with --no-defaults), uses the system's clusters or data folders, or
starts a system service, so several test processes can each run theirs.

Database servers refuse to run as root: when the tests run as root the
servers run as ``nobody`` (the process is switched to it before exec),
which then owns the temporary folder; otherwise they run as the current
user. Each server is started in the foreground as a child of the test
process, and the kernel sends it a stop signal should the test process
die without cleaning up (PR_SET_PDEATHSIG), so none outlives a killed
run.

Starting takes about a second (initdb, or mariadb-install-db, included),
so a test process shares one server of each kind: ``shared_server(kind)``
starts it on first use and stops it at exit. Tests isolate themselves by
database instead: ``DatabaseFixture(backend)`` creates an empty database
(an SQLite file, or a database on the shared server, owned by an
unprivileged role that logs in with a password over TCP) and drops it at
cleanup; its ``url`` is what [korora_database] connection takes.
"""

import atexit
import ctypes
import glob
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import fixtures

from korora_nova.tests import rabbitmq

POSTGRESQL = 'postgresql'
MYSQL = 'mysql'
SQLITE = 'sqlite'
BACKENDS = (SQLITE, POSTGRESQL, MYSQL)

START_TIMEOUT = 60.0
INIT_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
LOG_TAIL = 4000
UNPRIVILEGED_USER = 'nobody'
PORT_ATTEMPTS = 3
# What both servers log when they cannot bind their port.
PORT_TAKEN = 'Address already in use'
# The role the tests' URLs log in as (the database's owner).
ROLE = 'korora'
PR_SET_PDEATHSIG = 1

# oslotest points tempfile at a per-test folder that is removed when the
# test ends: a shared server lives in the process's real temporary folder.
_PROCESS_TMP = tempfile.gettempdir()
_counter = itertools.count(1)
_prctl = ctypes.CDLL(None, use_errno=True).prctl


class DatabaseServerError(Exception):
    """A server is missing, did not start, or died."""


def _die_with_parent(signum):
    """A preexec_fn: the child gets signum when the thread that started it
    exits (Linux PR_SET_PDEATHSIG, set after the switch of user, so it
    survives exec). Nothing is imported or looked up after the fork."""
    def preexec():
        _prctl(PR_SET_PDEATHSIG, signum)
    return preexec


def _run_as():
    """(user, uid, gid) the servers run as: nobody under root, else None
    (the current user)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise DatabaseServerError(
            'the tests run as root and database servers refuse root, but '
            'there is no user %r to run them as' % UNPRIVILEGED_USER)
    return entry.pw_name, entry.pw_uid, entry.pw_gid


class _Server(fixtures.Fixture):
    """What both servers share: a folder, a port, a foreground process,
    bounded waits and log tails in every error."""

    kind = None
    stop_signal = signal.SIGTERM

    def __init__(self, start_timeout=START_TIMEOUT):
        super().__init__()
        self.start_timeout = start_timeout
        self.process = None
        self.directory = None
        self.port = None
        self.password = secrets.token_hex(12)
        self.user = _run_as()
        self.started_in = None
        self._role_created = False

    # Where things are

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def path(self, *names):
        return os.path.join(self.directory, *names)

    @property
    def logs(self):
        """Log files, most telling first."""
        raise NotImplementedError

    def log_tail(self, size=LOG_TAIL):
        return '\n'.join('--- %s ---\n%s' % (log, rabbitmq.tail(log, size))
                         for log in self.logs)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    # Life cycle

    def _setUp(self):
        started = time.monotonic()
        self.directory = tempfile.mkdtemp(
            prefix='korora-%s-' % self.kind, dir=_PROCESS_TMP)
        self.addCleanup(shutil.rmtree, self.directory, True)
        if self.user is not None:
            os.chown(self.directory, self.user[1], self.user[2])
        self.addCleanup(self.stop)
        self._initialize()
        # Another process may bind the free port before the server does:
        # then try another one.
        for attempt in range(PORT_ATTEMPTS, 0, -1):
            self.port = rabbitmq.free_port()
            self._start()
            if self._wait_until_answering(retry_if_port_taken=attempt > 1):
                break
        self.started_in = time.monotonic() - started

    def _popen_args(self, **kwargs):
        """Keyword arguments that start a child as the server's user."""
        kwargs.setdefault('cwd', self.directory)
        kwargs.setdefault('stdin', subprocess.DEVNULL)
        if self.user is not None:
            kwargs.update(user=self.user[1], group=self.user[2],
                          extra_groups=[])
        return kwargs

    def _environment(self):
        env = dict(os.environ)
        env.update({'HOME': self.directory, 'TMPDIR': self.directory,
                    'LC_ALL': 'C.UTF-8', 'TZ': 'UTC'})
        # libpq's and the MariaDB client's own settings must not leak in.
        for name in list(env):
            if name.startswith(('PG', 'MYSQL', 'MARIADB')):
                del env[name]
        return env

    def _run_tool(self, command, log_name, timeout=INIT_TIMEOUT):
        """Run an initialization tool as the server's user; raise with its
        output if it fails."""
        log = self.path(log_name)
        with open(log, 'wb') as output:
            if self.user is not None:
                os.fchown(output.fileno(), self.user[1], self.user[2])
            try:
                status = subprocess.run(
                    command, env=self._environment(), stdout=output,
                    stderr=subprocess.STDOUT,
                    **self._popen_args(timeout=timeout)).returncode
            except subprocess.TimeoutExpired:
                status = 'timed out after %.0f s' % timeout
        if status != 0:
            raise DatabaseServerError(
                '%s failed (%s)%s:\n--- %s ---\n%s'
                % (' '.join(command), status, self._ownership_hint(), log,
                   rabbitmq.tail(log)))

    def _ownership_hint(self):
        if self.user is None:
            return ''
        return ('; it ran as %s: every folder above %s must be searchable '
                'by that user' % (self.user[0], self.directory))

    def _spawn(self, command, console_name):
        console = self.path(console_name)
        with open(console, 'wb') as output:
            if self.user is not None:
                os.fchown(output.fileno(), self.user[1], self.user[2])
            self.process = subprocess.Popen(
                command, env=self._environment(), stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(self.stop_signal),
                **self._popen_args())

    def _wait_until_answering(self, retry_if_port_taken=False):
        """True once the server answers; False if it exited because its
        port was taken and retry_if_port_taken."""
        deadline = time.monotonic() + self.start_timeout
        error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if retry_if_port_taken and PORT_TAKEN in rabbitmq.tail(
                        self.logs[0]):
                    self.process = None
                    return False
                raise DatabaseServerError(
                    '%s server exited (status %s) before it answered on '
                    'port %d:\n%s'
                    % (self.kind, self.process.returncode, self.port,
                       self.log_tail()))
            try:
                self._connect_admin().close()
                return True
            except Exception as failure:   # not up yet: drivers differ
                error = failure
            time.sleep(0.1)
        raise DatabaseServerError(
            '%s server did not answer on port %d within %.0f s (last '
            'error: %s):\n%s' % (self.kind, self.port, self.start_timeout,
                                 error, self.log_tail()))

    def stop(self):
        """Stop the server; SIGKILL it if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # Databases

    def admin(self, *statements):
        """Run statements as the server's superuser, autocommitting."""
        connection = self._connect_admin()
        try:
            self._autocommit(connection)
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()

    def create_database(self, name):
        raise NotImplementedError

    def drop_database(self, name):
        raise NotImplementedError

    def url(self, database):
        raise NotImplementedError


class PostgreSQLServer(_Server):
    """A PostgreSQL cluster of its own: initdb into the temporary folder,
    postgres in the foreground with its socket there too. Password logins
    (scram-sha-256) over TCP; the superuser (postgres) over the socket
    only."""

    kind = POSTGRESQL
    # Fast shutdown: roll back open transactions, close sessions.
    stop_signal = signal.SIGINT
    superuser = 'postgres'

    def __init__(self, bindir=None, **kwargs):
        super().__init__(**kwargs)
        self.bindir = bindir or self.find_bindir()

    @staticmethod
    def find_bindir():
        """The newest /usr/lib/postgresql/N/bin, else initdb on PATH."""
        def version(path):
            number = path.split(os.sep)[-3]
            return int(number) if number.isdigit() else 0
        found = sorted(glob.glob('/usr/lib/postgresql/*/bin/postgres'),
                       key=version)
        if found:
            return os.path.dirname(found[-1])
        initdb = shutil.which('initdb')
        if initdb:
            return os.path.dirname(initdb)
        raise DatabaseServerError(
            'no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/'
            'postgres): install the Debian package postgresql '
            '(bindep.txt)')

    @property
    def data(self):
        return self.path('data')

    @property
    def logs(self):
        return [self.path('postgres.log'), self.path('initdb.log')]

    def _initialize(self):
        password_file = self.path('superuser-password')
        with open(password_file, 'w') as stream:
            stream.write(secrets.token_hex(12) + '\n')
        if self.user is not None:
            os.chown(password_file, self.user[1], self.user[2])
        self._run_tool([
            os.path.join(self.bindir, 'initdb'), '--pgdata', self.data,
            '--username', self.superuser, '--pwfile', password_file,
            '--auth-local', 'trust', '--auth-host', 'scram-sha-256',
            '--encoding', 'UTF8', '--locale', 'C', '--no-sync',
            '--no-instructions'], 'initdb.log')

    def _start(self):
        self._spawn([
            os.path.join(self.bindir, 'postgres'), '-D', self.data,
            '-p', str(self.port), '-k', self.directory,
            '-c', 'listen_addresses=127.0.0.1',
            '-c', 'max_connections=100',
            '-c', 'shared_buffers=32MB',
            # A throwaway cluster: durability buys nothing here.
            '-c', 'fsync=off', '-c', 'synchronous_commit=off',
            '-c', 'full_page_writes=off',
            '-c', 'logging_collector=off', '-c', 'log_timezone=UTC',
            '-c', 'timezone=UTC'], 'postgres.log')

    def _connect_admin(self, database='postgres'):
        import psycopg2
        # Over the cluster's own socket folder, where the superuser is
        # trusted.
        return psycopg2.connect(host=self.directory, port=self.port,
                                user=self.superuser, dbname=database,
                                connect_timeout=5)

    @staticmethod
    def _autocommit(connection):
        connection.autocommit = True

    def create_database(self, name):
        _check_name(name)
        statements = ['CREATE DATABASE %s OWNER %s' % (name, ROLE)]
        if not self._role_created:
            statements.insert(0, "CREATE ROLE %s LOGIN PASSWORD '%s'"
                              % (ROLE, self.password))
        self.admin(*statements)
        self._role_created = True

    def drop_database(self, name):
        _check_name(name)
        # FORCE ends sessions a test left open (PostgreSQL 13 and later).
        self.admin('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)

    def url(self, database):
        return 'postgresql+psycopg2://%s:%s@127.0.0.1:%d/%s' % (
            ROLE, self.password, self.port, database)


class MariaDBServer(_Server):
    """A MariaDB server of its own: mariadb-install-db into the temporary
    folder, mariadbd in the foreground with --no-defaults. Its root logs in
    over the server's socket only; tests log in over TCP with a
    password."""

    kind = MYSQL
    stop_signal = signal.SIGTERM
    # Debian's own server configuration (50-server.cnf) uses these.
    charset = 'utf8mb4'
    collation = 'utf8mb4_general_ci'

    def __init__(self, mariadbd=None, install_db=None, **kwargs):
        super().__init__(**kwargs)
        self.mariadbd = mariadbd or self._find(
            ('/usr/sbin/mariadbd', '/usr/sbin/mysqld'), 'mariadbd')
        self.install_db = install_db or self._find(
            ('/usr/bin/mariadb-install-db', '/usr/bin/mysql_install_db'),
            'mariadb-install-db')

    @staticmethod
    def _find(paths, name):
        for path in paths:
            if os.access(path, os.X_OK):
                return path
        found = shutil.which(name)
        if found:
            return found
        raise DatabaseServerError(
            '%s is missing: install the Debian packages mariadb-server-core '
            'and mariadb-client-core (bindep.txt)' % name)

    @property
    def data(self):
        return self.path('data')

    @property
    def socket(self):
        return self.path('mariadbd.sock')

    @property
    def logs(self):
        return [self.path('error.log'), self.path('console.log'),
                self.path('install-db.log')]

    def _server_options(self):
        return [
            '--datadir=%s' % self.data, '--tmpdir=%s' % self.directory,
            '--innodb-log-file-size=16M', '--innodb-buffer-pool-size=64M',
            '--character-set-server=%s' % self.charset,
            '--collation-server=%s' % self.collation,
            '--skip-name-resolve']

    def _initialize(self):
        # --no-defaults must come first; the other server options are
        # handed to the bootstrapping mariadbd.
        self._run_tool(
            [self.install_db, '--no-defaults',
             '--auth-root-authentication-method=normal', '--skip-test-db']
            + self._server_options(), 'install-db.log')

    def _start(self):
        self._spawn(
            [self.mariadbd, '--no-defaults'] + self._server_options() + [
                '--port=%d' % self.port, '--bind-address=127.0.0.1',
                '--socket=%s' % self.socket,
                '--pid-file=%s' % self.path('mariadbd.pid'),
                '--log-error=%s' % self.path('error.log'),
                '--skip-log-bin', '--max-connections=100',
                # A throwaway server: durability buys nothing here.
                '--innodb-flush-log-at-trx-commit=0',
                '--innodb-doublewrite=0'],
            'console.log')

    def _connect_admin(self):
        import pymysql
        return pymysql.connect(unix_socket=self.socket, user='root',
                               connect_timeout=5)

    @staticmethod
    def _autocommit(connection):
        connection.autocommit(True)

    def create_database(self, name):
        _check_name(name)
        statements = [
            'CREATE DATABASE %s CHARACTER SET %s COLLATE %s'
            % (name, self.charset, self.collation),
            "GRANT ALL PRIVILEGES ON %s.* TO '%s'@'127.0.0.1'"
            % (name, ROLE)]
        if not self._role_created:
            statements.insert(0, "CREATE USER '%s'@'127.0.0.1' "
                              "IDENTIFIED BY '%s'" % (ROLE, self.password))
        self.admin(*statements)
        self._role_created = True

    def drop_database(self, name):
        _check_name(name)
        self.admin('DROP DATABASE IF EXISTS %s' % name)

    def url(self, database):
        return 'mysql+pymysql://%s:%s@127.0.0.1:%d/%s?charset=%s' % (
            ROLE, self.password, self.port, database, self.charset)


SERVERS = {POSTGRESQL: PostgreSQLServer, MYSQL: MariaDBServer}


def _check_name(name):
    if not re.match(r'^[a-z][a-z0-9_]{0,62}$', name):
        raise ValueError('not a plain database name: %r' % name)


_shared_lock = threading.Lock()
_shared = {}


def shared_server(kind):
    """The test process's server of a kind (POSTGRESQL or MYSQL): started
    on first use, stopped at exit. One that died is replaced."""
    with _shared_lock:
        server = _shared.get(kind)
        if server is not None and not server.alive():
            server.cleanUp()
            server = None
        if server is None:
            server = SERVERS[kind]()
            try:
                server.setUp()
            except fixtures.MultipleExceptions as errors:
                # fixtures wraps what _setUp raised (and has cleaned up
                # already): raise the server's own error.
                raise errors.args[0][1].with_traceback(errors.args[0][2])
            _shared[kind] = server
            if not _shared.get('atexit'):
                atexit.register(_stop_shared)
                _shared['atexit'] = True
        return server


def _stop_shared():
    with _shared_lock:
        servers = [_shared.pop(kind, None) for kind in SERVERS]
    for server in servers:
        if server is not None:
            server.cleanUp()


class DatabaseFixture(fixtures.Fixture):
    """An empty database of a backend (SQLITE, POSTGRESQL or MYSQL) for one
    test, dropped at cleanup. Attributes: url, backend, name, server (None
    for SQLite).

    Dispose of engines on it (korora_nova.db.api.dispose) before cleanup:
    add that cleanup after this fixture.
    """

    def __init__(self, backend):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError('unknown backend %r' % (backend,))
        self.backend = backend
        self.server = None

    def _setUp(self):
        self.name = 'korora_%d' % next(_counter)
        if self.backend == SQLITE:
            folder = self.useFixture(fixtures.TempDir()).path
            self.url = 'sqlite:///' + os.path.join(folder,
                                                   self.name + '.sqlite')
            return
        self.server = shared_server(self.backend)
        self.server.create_database(self.name)
        self.addCleanup(self.server.drop_database, self.name)
        self.url = self.server.url(self.name)
