"""The libvirt hook on a destination host: only Kororā-approved live
migrations of vTPM guests come in.

Installed (libvirt >= 6.5 runs every executable of these folders, in
turn, beside an operator's own hook; see hook_install) as::

    /etc/libvirt/hooks/qemu.d/korora     (QEMU/KVM)
    /etc/libvirt/hooks/libxl.d/korora    (Xen)

libvirt runs it with ``DOMAIN OPERATION SUB_OPERATION EXTRA`` and the
domain XML on stdin. On the destination of a live migration
``DOMAIN migrate begin -`` comes first, with the incoming definition; a
non-zero exit cancels the migration and the hook's stderr reaches the
error the source reports. Only that call is checked; every other
operation ends at once with status 0.

libvirt 9.0's libxl driver (Debian 12's) gives ``migrate begin`` no XML
on stdin: it formats the incoming definition with flags
virDomainDefFormat does not take ("unsupported flags (0x8)") and runs
the hook with empty input. The hook in ``libxl.d`` is therefore
installed with ``--incoming-dir DIR``: an empty ``migrate begin`` only
leaves a mark for the domain's name there (nothing has been restored
yet), and the ``prepare begin`` that follows, when the incoming domain
is about to be started from the stream and its definition is on stdin,
takes the mark and makes the same check. A ``prepare begin`` without a
mark is a domain started on this host, and passes (the installed
script looks for the mark itself and then does not start the hook at
all). A mark left by a migration that failed before its prepare makes
the next start of that name be checked once: it fails closed.

The hook asks the local vTPM manager: it sends the domain XML to
korora-vtpm-manager on a UNIX socket ([korora] libvirt_hook_socket, only
root and the manager's user may connect) and exits as the manager
answers. The manager decides (korora_nova.vtpm_manager.admission, served by
korora_nova.vtpm_manager.hook_server) from what the verifier authorized,
and logs every admission and refusal. libvirt runs the hook inside its
migration job: a process that imported oslo.config and SQLAlchemy would
add half a second to every incoming migration, so this module uses the
standard library only.

Because libvirt waits for a hook without a time limit and a hook must
never call back into libvirt, this one:

* bounds itself: --timeout seconds after it starts (counted from the
  start of the process) a timer ends the process with status 1 and
  "... timed out" on stderr; the socket's own timeout and an alarm
  signal a few seconds later are backstops should that timer never run;
* fails closed: bad arguments, no manager answering, a missing,
  oversized (over 1 MiB) or empty domain XML, a garbled answer, any
  unexpected error: status 1;
* writes nothing on stdout (a migrate hook's stdout replaces the
  incoming XML): file descriptors 1 and 2 point to /dev/null while it
  runs, so nothing can write there by accident;
* writes exactly one line on stderr when it refuses, starting with
  "Korora: " (libvirt shows it in the source's error), and nothing when
  it passes.

The protocol, one connection per decision: the hook sends the header
line ``korora-libvirt-hook 1 DOMAIN`` (at most MAX_HEADER bytes), the
domain XML, and shuts its writing side down; the manager answers one
line, ``PASS <summary>`` or ``REFUSE <reason>`` (at most MAX_ANSWER
bytes), and closes.
"""

import hashlib
import math
import os
import signal
import socket
import sys
import threading
import time

from korora_nova.libvirt_hook import protocol

PROG = 'korora-libvirt-hook'
PREFIX = 'Korora: '

USAGE = ('usage: %s [--socket PATH] [--timeout SECONDS] [--incoming-dir DIR] '
         'DOMAIN OPERATION SUB_OPERATION EXTRA (as libvirt runs hooks)'
         % PROG)
MIGRATE_BEGIN, PREPARE_BEGIN = ('migrate', 'begin'), ('prepare', 'begin')
INCOMING_DIR_OPTION = '--incoming-dir'


EXIT_PASS, EXIT_REFUSE = 0, 1
# Seconds after the limit when SIGALRM (default action: terminate) ends
# a process whose timer could not run.
ALARM_BACKSTOP = 3


class Deadline:
    """Ends the process with status 1 and a "timed out" line unless it
    finished first; once it finished, with its own status."""

    def __init__(self, err_fd, started):
        self.err_fd = err_fd
        self.started = started
        self.limit = None
        self.waiting_for = None
        self.status = None
        self._lock = threading.Lock()
        self._timer = None

    def arm(self, limit):
        """Expire limit seconds after the start (re-arming moves it)."""
        self.limit = limit
        if self._timer is not None:
            self._timer.cancel()
        remaining = self.remaining()
        self._timer = threading.Timer(remaining, self._expire)
        self._timer.daemon = True
        self._timer.start()
        # The backstop: SIGALRM's default action ends the process even
        # if the timer thread never gets to run.
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(math.ceil(remaining)) + ALARM_BACKSTOP)

    def remaining(self):
        return max(0.0, self.started + self.limit - time.monotonic())

    def timed_out(self):
        """The reason given when the limit passes."""
        waiting = ''
        if self.waiting_for:
            waiting = (' waiting for korora-vtpm-manager on %s'
                       % self.waiting_for)
        return ('the libvirt hook timed out after %.1f s%s (--timeout): '
                'the incoming migration is refused' % (self.limit, waiting))

    def _expire(self):
        with self._lock:
            if self.status is None:
                self.status = EXIT_REFUSE
                write_line(self.err_fd,
                           PREFIX + protocol.one_line(self.timed_out()))
            os._exit(self.status)

    def finish(self, status, line=None):
        """Decide: write line (if any) unless the deadline came first."""
        with self._lock:
            if self.status is not None:
                return self.status
            self.status = status
            if line is not None:
                write_line(self.err_fd, line)
            return status


def write_line(fd, line):
    data = (line + '\n').encode('utf-8', 'replace')
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass        # nobody listens: the status still says it


def silence_standard_streams():
    """Point fds 1 and 2 at /dev/null; returns a copy of the original
    stderr for the one line the hook writes."""
    err_fd = os.dup(2)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
    finally:
        os.close(null)
    return err_fd


def read_stdin(limit=protocol.MAX_XML_BYTES, fd=0, empty_allowed=False):
    """At most limit bytes from fd, until its end; more is refused, and
    so is nothing unless empty_allowed (then b'' is returned)."""
    from korora_nova import exception
    from korora_nova.hypervisors import base

    try:
        data = base.read_fd(os.dup(fd), limit, 'stdin',
                            'the domain XML')
    except (exception.InstanceStateError, OSError) as error:
        raise protocol.Refused(str(error))
    if not data.strip():
        if empty_allowed:
            return b''
        raise protocol.Refused('no domain XML on stdin')
    return data


def _mark_path(folder, name):
    # Any domain name, one fixed-length file name.
    digest = hashlib.sha256(name.encode('utf-8', 'surrogateescape'))
    return os.path.join(folder, digest.hexdigest())


def mark_incoming(folder, name):
    """Note that domain name is coming in (libxl's empty migrate begin),
    for the prepare begin that follows; protocol.Refused if it cannot
    be noted."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(_mark_path(folder, name),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                     0o600)
        try:
            os.write(fd, name.encode('utf-8', 'surrogateescape')[:4096])
        finally:
            os.close(fd)
    except OSError as error:
        raise protocol.Refused('cannot note the incoming domain in %s: %s'
                               % (folder, error.strerror or error))


def take_incoming_mark(folder, name):
    """True if domain name was noted as coming in (the note is removed
    now, before the check); protocol.Refused if that cannot be told."""
    try:
        os.unlink(_mark_path(folder, name))
    except FileNotFoundError:
        return False
    except OSError as error:
        raise protocol.Refused('cannot tell whether domain %s is coming in '
                               '(%s: %s)' % (protocol.one_line(
                                   name, protocol.MAX_NAME), folder,
                                   error.strerror or error))
    return True


def parse_arguments(argv):
    """(socket path, timeout, incoming dir or None) from the options
    before libvirt's four arguments; protocol.Refused when they are not
    understood."""
    path, timeout = protocol.DEFAULT_SOCKET, protocol.DEFAULT_TIMEOUT
    incoming = None
    options = list(argv[:-4])
    while options:
        option = options.pop(0)
        name, equals, value = option.partition('=')
        if name not in ('--socket', '--timeout', INCOMING_DIR_OPTION):
            raise protocol.Refused('bad arguments: unknown option %r; %s'
                                   % (option[:64], USAGE))
        if not equals:
            if not options:
                raise protocol.Refused('bad arguments: %s needs a value; %s'
                                       % (name, USAGE))
            value = options.pop(0)
        if name == '--socket':
            if not value:
                raise protocol.Refused('bad arguments: --socket is empty; %s'
                                       % USAGE)
            path = value
        elif name == INCOMING_DIR_OPTION:
            if not os.path.isabs(value):
                raise protocol.Refused('bad arguments: %s %r is not an '
                                       'absolute path; %s' % (
                                           name, value[:64], USAGE))
            incoming = value
        else:
            try:
                timeout = float(value)
            except ValueError:
                timeout = None
            if timeout is None or not 0 < timeout < 3600:
                raise protocol.Refused(
                    'bad arguments: --timeout %r is not a number of seconds '
                    'between 0 and 3600; %s' % (value[:32], USAGE))
    return path, timeout, incoming


def request_header(name):
    """The header line naming the domain (for the manager's log)."""
    room = protocol.MAX_HEADER - len(protocol.PROTOCOL) - 2
    shown = protocol.one_line(name, protocol.MAX_NAME).encode(
        'ascii', 'backslashreplace')
    return protocol.PROTOCOL + b' ' + shown[:room] + b'\n'


def not_answering(path):
    return ('korora-vtpm-manager does not answer on %s (is it running, '
            'with [korora] libvirt_hook_socket = %s?)' % (path, path))


def ask(path, request, deadline):
    """Send request to the manager on path; returns its answer (bytes,
    at most protocol.MAX_ANSWER + 1)."""
    answer = bytearray()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.settimeout(max(0.001, deadline.remaining()))
            server.connect(path)
            try:
                server.sendall(request)
                server.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass    # it stopped reading: its answer may say why
            while len(answer) <= protocol.MAX_ANSWER:
                server.settimeout(max(0.001, deadline.remaining()))
                chunk = server.recv(protocol.MAX_ANSWER + 1 - len(answer))
                if not chunk:
                    break
                answer += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        raise protocol.Refused(not_answering(path))
    except socket.timeout:
        raise protocol.Refused(deadline.timed_out())
    except OSError as error:
        raise protocol.Refused('cannot ask korora-vtpm-manager on %s: %s'
                               % (path, error.strerror or error))
    return bytes(answer)


def parse_answer(answer, path):
    """(passed, summary or reason) from the manager's answer."""
    who = 'korora-vtpm-manager on %s' % path
    if not answer:
        raise protocol.Refused('%s closed the connection without an answer'
                               % who)
    if len(answer) > protocol.MAX_ANSWER:
        raise protocol.Refused('%s sent an oversized answer (over %d bytes)'
                               % (who, protocol.MAX_ANSWER))
    verb, _, text = answer.rstrip(b'\n').partition(b' ')
    if (not answer.endswith(b'\n') or answer.count(b'\n') != 1 or
            verb not in (protocol.PASS.encode(), protocol.REFUSE.encode())):
        raise protocol.Refused('%s sent a garbled answer %r'
                               % (who, answer[:64].decode('ascii', 'replace')))
    text = text.decode('utf-8', 'replace')
    if verb == protocol.REFUSE.encode():
        return False, text or 'no reason given'
    return True, text


def run(argv, started=None):
    """The hook; argv without the program name. Returns the status."""
    started = process_started() if started is None else started
    operation = tuple(argv[-3:-1])
    if len(argv) >= 4 and operation != MIGRATE_BEGIN and not (
            operation == PREPARE_BEGIN and any(
                word.startswith(INCOMING_DIR_OPTION)
                for word in argv[:-4])):
        return EXIT_PASS
    err_fd = silence_standard_streams()
    deadline = Deadline(err_fd, started)
    # The limit until the arguments are read.
    deadline.arm(protocol.DEFAULT_TIMEOUT)
    if len(argv) < 4:
        return deadline.finish(EXIT_REFUSE, PREFIX + protocol.one_line(
                     'bad arguments; %s' % USAGE))
    name = argv[-4]
    try:
        path, timeout, incoming = parse_arguments(argv)
        deadline.arm(timeout)
        if operation == PREPARE_BEGIN:
            if not take_incoming_mark(incoming, name):
                # A start of a domain of this host, not an arrival.
                return deadline.finish(EXIT_PASS)
            xml = read_stdin()
        else:
            xml = read_stdin(empty_allowed=incoming is not None)
            if not xml:
                # libxl's migrate begin without the definition: checked
                # at its prepare begin.
                mark_incoming(incoming, name)
                return deadline.finish(EXIT_PASS)
        deadline.waiting_for = path
        passed, reason = parse_answer(
            ask(path, request_header(name) + xml, deadline), path)
    except protocol.Refused as refused:
        passed, reason = False, str(refused)
    except BaseException as error:
        passed, reason = False, ('unexpected error in the libvirt hook: '
                                 '%s: %s' % (type(error).__name__, error))
    if passed:
        return deadline.finish(EXIT_PASS)
    return deadline.finish(EXIT_REFUSE, PREFIX + protocol.one_line(
                 'incoming live migration of domain %s refused: %s'
                 % (protocol.one_line(name, protocol.MAX_NAME), reason)))


def process_started():
    """time.monotonic() when this process started (Linux: from
    /proc/self/stat and CLOCK_BOOTTIME), or now if unknown."""
    now = time.monotonic()
    try:
        with open('/proc/self/stat', 'rb') as stream:
            stat = stream.read(4096)
        # Fields after the command name "(...)"; starttime is field 22.
        fields = stat[stat.rindex(b')') + 2:].split()
        started = int(fields[19]) / os.sysconf('SC_CLK_TCK')
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0 <= age < 3600 else now


def main(argv=None):
    """Console entry: the process's status."""
    return run(sys.argv[1:] if argv is None else argv)
