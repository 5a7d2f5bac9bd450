"""korora-vtpm-manager's answers to korora-libvirt-hook.

libvirt runs the hook inside its migration job for every incoming live
migration; a hook that started Python with oslo.config and SQLAlchemy
would cost half a second each time. So the decision
(korora_nova.vtpm_manager.admission) runs here, in the long-lived manager of
the destination host, and the hook (korora_nova.libvirt_hook.client, the
standard library only) just asks over a UNIX socket, [korora]
libvirt_hook_socket.

Only root (libvirt runs hooks as root) and the manager's user may
connect: the socket's mode is 0600, set before it appears at its path
(it is bound in a private folder, then renamed into place). A stale
socket file at the path is replaced; anything else there (a regular
file, a symbolic link, a folder) stops the manager with a clear error,
so a wrong option never removes an operator's file.

Per connection, in a thread of its own, a header line
(korora_nova.libvirt_hook.protocol.PROTOCOL and the domain's name), the
domain XML until the client shuts its writing side down, both bounded
in size and, together, by [korora] libvirt_hook_timeout; then one
answer line, ``PASS <summary>`` or ``REFUSE <reason>``. The manager
logs every admission (INFO) and refusal (WARNING), with any traceback;
the hook only shows the reason.

The same socket carries nova-compute's calls to its own vTPM manager
(korora_nova.vtpm_manager.local_client): host-local calls stay on the
host, off the message bus. A request is a header line ``korora-local 1
METHOD``, a JSON object of arguments, and the client's shut-down; the
answer one JSON line, ``{"result": ...}`` or ``{"error": "..."}``. Each
such call carries the verifier's authorization, which the manager
checks (korora_nova.vtpm_manager.authorization).

The decision on an incoming domain reads the manager's own approvals:
the migrations whose transfer the verifier authorized for this host. No
database is read.
"""

import base64
import json
import os
import socket
import stat
import tempfile
import threading
import time

from oslo_log import log as logging
from oslo_utils import excutils

from korora_nova import exception
from korora_nova.vtpm_manager import admission
from korora_nova.libvirt_hook import protocol

LOG = logging.getLogger(__name__)

FOLDER_MODE = 0o755
SOCKET_MODE = 0o600
# The longest path a UNIX socket address holds (sun_path less its NUL).
MAX_SOCKET_PATH = 107
# Connections waiting to be accepted: libvirt runs hooks one after
# another, so a few are plenty.
BACKLOG = 16
# Seconds between two looks whether to stop.
ACCEPT_POLL = 0.2
# How long start() waits for an answer from a socket already at the path.
LIVE_CHECK_TIMEOUT = 0.5
# nova-compute's calls (local_client).
LOCAL_PROTOCOL = b'korora-local 1'


def check_path(path):
    """Raise HookSocketError unless path may become our socket: absent,
    or a socket (a stale one, replaced at start)."""
    if not os.path.isabs(path):
        raise exception.HookSocketError(
            '[korora] libvirt_hook_socket %r is not an '
            'absolute path' % path)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise exception.HookSocketError(
            '[korora] libvirt_hook_socket %s is longer '
            'than a UNIX socket path may be (%d bytes)'
            % (path, MAX_SOCKET_PATH))
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise exception.HookSocketError('[korora] libvirt_hook_socket %s: %s'
                                        % (path, error.strerror or error))
    if not stat.S_ISSOCK(info.st_mode):
        kind = ('a symbolic link' if stat.S_ISLNK(info.st_mode) else
                'a folder' if stat.S_ISDIR(info.st_mode) else
                'a regular file' if stat.S_ISREG(info.st_mode) else
                'not a socket')
        raise exception.HookSocketError(
            '[korora] libvirt_hook_socket %s exists and '
            'is %s: not replaced (remove it, or choose '
            'another path)' % (path, kind))


def preflight(conf):
    """What the manager's start would refuse, checked before it forks."""
    path = conf.korora.libvirt_hook_socket
    if path:
        check_path(path)
        _check_not_answered(path)


def _check_not_answered(path):
    if os.path.lexists(path) and _answering(path):
        raise exception.HookSocketError(
            '[korora] libvirt_hook_socket %s: another '
            'process answers there already (a second '
            'korora-vtpm-manager?)' % path)


def _answering(path):
    """Whether a process accepts connections on the socket at path."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(LIVE_CHECK_TIMEOUT)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _make_folder(folder):
    if os.path.isdir(folder):
        return
    try:
        os.makedirs(folder, FOLDER_MODE)
        # The umask may have taken bits away: libvirt's hook must reach
        # the socket in it.
        os.chmod(folder, FOLDER_MODE)
    except FileExistsError:
        pass
    except OSError as error:
        raise exception.HookSocketError('cannot create the folder of [korora] '
                                        'libvirt_hook_socket %s: %s'
                                        % (folder, error.strerror or error))


class HookServer:
    """Answers korora-libvirt-hook for host (default [DEFAULT] host) on
    path (default [korora] libvirt_hook_socket)."""

    def __init__(self, conf, host=None, path=None, manager=None):
        """manager: the VTPMManager whose approvals decide and that
        serves nova-compute's local calls (none: every incoming domain
        that needs an approval is refused)."""
        self.conf = conf
        self.host = host or conf.host
        self.path = path or conf.korora.libvirt_hook_socket
        self.manager = manager
        self._listener = None
        self._thread = None
        self._identity = None
        self._stopping = threading.Event()

    def start(self):
        check_path(self.path)
        _make_folder(os.path.dirname(self.path))
        _check_not_answered(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._bind(listener)
            listener.listen(BACKLOG)
            # accept() wakes up this often to see whether to stop.
            listener.settimeout(ACCEPT_POLL)
        except BaseException:
            with excutils.save_and_reraise_exception():
                listener.close()
        self._listener = listener
        self._stopping.clear()
        # Plain threads, not socketserver: its selector would block a
        # whole eventlet-patched process (the tests run in both modes).
        self._thread = threading.Thread(target=self._serve,
                                        name='korora-libvirt-hook-server',
                                        daemon=True)
        self._thread.start()
        LOG.info('answering korora-libvirt-hook for host %s on %s',
                 self.host, self.path)

    def _serve(self):
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError as error:
                if self._stopping.is_set():
                    return
                LOG.warning('korora-libvirt-hook socket %s: %s', self.path,
                            error)
                self._stopping.wait(ACCEPT_POLL)
                continue
            threading.Thread(target=self._handle, args=(connection,),
                             name='korora-libvirt-hook-request',
                             daemon=True).start()

    def _handle(self, connection):
        with connection:
            self.answer(connection)

    def _bind(self, listener):
        """Bind listener at self.path with mode 0600 from the start: in a
        private folder first, then renamed over a stale socket if any."""
        folder = os.path.dirname(self.path)
        try:
            private = tempfile.mkdtemp(prefix='.k', dir=folder)
        except OSError as error:
            raise exception.HookSocketError(
                'cannot create a socket in %s: %s'
                % (folder, error.strerror or error))
        temporary = os.path.join(private, 's')
        try:
            listener.bind(temporary)
            os.chmod(temporary, SOCKET_MODE)
            check_path(self.path)
            os.rename(temporary, self.path)
            info = os.lstat(self.path)
            self._identity = (info.st_dev, info.st_ino)
        except OSError as error:
            raise exception.HookSocketError(
                'cannot serve [korora] libvirt_hook_socket '
                '%s: %s' % (self.path,
                            error.strerror or error))
        finally:
            if os.path.lexists(temporary):
                os.unlink(temporary)
            os.rmdir(private)

    def stop(self):
        """Stop answering; remove the socket if it is still ours."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping.set()
        self._thread.join()
        listener.close()
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass
        LOG.info('stopped answering korora-libvirt-hook on %s', self.path)

    # One request.

    def answer(self, connection):
        timeout = self.conf.korora.libvirt_hook_timeout
        until = time.monotonic() + timeout
        name = '(unnamed)'
        try:
            request = read_request(connection, until, timeout)
            if request is None:
                LOG.debug('korora-libvirt-hook socket: empty connection')
                return
            kind, name, body = request
            if kind == LOCAL_PROTOCOL:
                return self._answer_local(connection, name, body, until)
            summary = admission.decide(
                body, self.host,
                self.conf.korora.libvirt_hook_require_approval_for_all,
                self._approvals)
        except protocol.Refused as refused:
            reason = protocol.one_line(refused)
            LOG.warning('incoming live migration of domain %s refused: %s',
                        name, reason, exc_info=refused.__cause__ is not None)
            reply = '%s %s' % (protocol.REFUSE, reason)
        except Exception as error:
            LOG.exception('incoming live migration of domain %s: unexpected '
                          'error', name)
            reply = ('%s unexpected error in korora-vtpm-manager (%s): see '
                     'its log' % (protocol.REFUSE, type(error).__name__))
        else:
            LOG.info('incoming live migration of domain %s admitted: %s',
                     name, summary)
            reply = '%s %s' % (protocol.PASS, summary)
        data = (protocol.one_line(reply) + '\n').encode('utf-8')
        self._send(connection, data[:protocol.MAX_ANSWER], until, name)

    def _approvals(self, instance_uuid):
        if self.manager is None:
            return []       # nothing approved: refused as any other
        return self.manager.incoming(instance_uuid)

    def _send(self, connection, data, until, name):
        try:
            connection.settimeout(max(0.1, until - time.monotonic()))
            connection.sendall(data)
        except OSError as error:
            LOG.warning('request %s: the answer could not be sent (%s): the '
                        'caller gave up waiting', name, error)

    def _answer_local(self, connection, method, body, until):
        """One call of nova-compute (LOCAL_METHODS), answered as JSON."""
        try:
            if self.manager is None or method not in LOCAL_METHODS:
                raise exception.NotAuthorized('no local call %r here'
                                              % method)
            try:
                arguments = json.loads(body)
            except (ValueError, RecursionError):
                raise exception.EvidenceError('the local call is not JSON')
            if not isinstance(arguments, dict):
                raise exception.EvidenceError('the local call\'s arguments '
                                              'are not an object')
            result = LOCAL_METHODS[method](self.manager, arguments)
            reply = {'result': result}
        except exception.KororaError as error:
            LOG.warning('local call %s refused: %s', method, error)
            reply = {'error': protocol.one_line(error)}
            # What could not be measured, for the quarantine to name.
            if isinstance(getattr(error, 'item', None), str):
                reply['item'] = protocol.one_line(error.item, 64)
        except Exception as error:
            LOG.exception('local call %s: unexpected error', method)
            reply = {'error': 'unexpected error in korora-vtpm-manager (%s): '
                              'see its log' % type(error).__name__}
        self._send(connection, json.dumps(reply).encode('ascii') + b'\n',
                   until, method)


def _open_transfer(manager, arguments):
    data_key = manager.open_transfer(arguments.get('authorization'),
                                     arguments.get('envelope'))
    return None if data_key is None else base64.b64encode(data_key).decode(
        'ascii')


LOCAL_METHODS = {
    'sign_request': lambda manager, arguments: manager.sign_request(
        arguments.get('instance_uuid'), arguments.get('source_host')),
    'open_transfer': _open_transfer,
    'sign_manifest': lambda manager, arguments: manager.sign_manifest(
        arguments.get('authorization'), arguments.get('vtpm_secret'),
        bool(arguments.get('block_migration'))),
    'measure_arrival': lambda manager, arguments: manager.measure_arrival(
        arguments.get('authorization'), arguments.get('vtpm_secret')),
    'advance_counter': lambda manager, arguments: manager.advance_counter(
        arguments.get('authorization')),
}


def read_request(connection, until, timeout):
    """(protocol, domain name or method, body) of a request, None for an
    empty connection; Refused for anything else that is not a bounded
    request."""
    data = bytearray()
    header = None
    while True:
        remaining = until - time.monotonic()
        try:
            if remaining <= 0:
                raise socket.timeout()
            connection.settimeout(remaining)
            chunk = connection.recv(64 * 1024)
        except socket.timeout:
            raise protocol.Refused(
                'the request was not complete within %.1f s ([korora] '
                'libvirt_hook_timeout)' % timeout)
        data += chunk
        if header is None:
            end = data.find(b'\n', 0, protocol.MAX_HEADER + 1)
            if end < 0:
                if not chunk and not data:
                    return None
                if not chunk or len(data) > protocol.MAX_HEADER:
                    raise protocol.Refused(
                        'not a korora-libvirt-hook request')
                continue
            header = bytes(data[:end])
            del data[:end + 1]
            words = header.split(b' ', 2)
            kind = b' '.join(words[:2])
            if kind not in (protocol.PROTOCOL, LOCAL_PROTOCOL):
                raise protocol.Refused(
                    'unsupported request %r (korora-libvirt-hook and '
                    'korora-vtpm-manager of different versions?)'
                    % header[:40].decode('ascii', 'replace'))
        if len(data) > protocol.MAX_XML_BYTES:
            raise protocol.Refused('the incoming domain XML is larger '
                                   'than %d bytes' % protocol.MAX_XML_BYTES)
        if not chunk:
            break
    if not data.strip():
        raise protocol.Refused('no domain XML in the request')
    name = words[2].decode('ascii', 'replace') if len(words) > 2 else '?'
    return kind, protocol.one_line(name, protocol.MAX_NAME), bytes(data)
