"""nova-compute's calls to the vTPM manager of its own host.

They go over the manager's root-only UNIX socket ([korora]
libvirt_hook_socket), never over the message bus: the data key of a
sealed vTPM secret, the secret nova-compute hands over for a
measurement, stay on the host. Each call carries the verifier's
authorization; the manager checks it (see hook_server for the wire
format).
"""

import base64
import binascii
import json
import socket
import time

from korora_nova import exception
from korora_nova.vtpm_manager import hook_server

# The longest answer: a signed manifest (migration.manifest.MAX_DOCUMENT)
# with room for its JSON quoting.
MAX_ANSWER = 256 * 1024
DATA_KEY_SIZE = 32


class LocalManager:
    """The vTPM manager at path, answering within timeout seconds."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout

    def sign_request(self, instance_uuid, source_host):
        """This host's signed request to receive instance (text for the
        verifier)."""
        return self._text(self._call('sign_request',
                                     instance_uuid=instance_uuid,
                                     source_host=source_host))

    def open_transfer(self, authorization, envelope=None):
        """The data key of envelope (bytes), or None without envelope."""
        answer = self._call('open_transfer', authorization=authorization,
                            envelope=envelope)
        if answer is None:
            return None
        try:
            data_key = base64.b64decode(answer, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise exception.EvidenceError('the vTPM manager sent a malformed '
                                          'data key')
        if len(data_key) != DATA_KEY_SIZE:
            raise exception.EvidenceError('the vTPM manager sent a data key '
                                          'of a wrong size')
        return data_key

    def sign_manifest(self, authorization, vtpm_secret, block_migration):
        return self._text(self._call(
            'sign_manifest', authorization=authorization,
            vtpm_secret=vtpm_secret, block_migration=block_migration))

    def measure_arrival(self, authorization, vtpm_secret):
        return self._text(self._call('measure_arrival',
                                     authorization=authorization,
                                     vtpm_secret=vtpm_secret))

    def advance_counter(self, authorization):
        value = self._call('advance_counter', authorization=authorization)
        if not isinstance(value, int) or isinstance(value, bool) or not (
                0 <= value < 2 ** 64):
            raise exception.EvidenceError('the vTPM manager sent a malformed '
                                          'counter value')
        return value

    @staticmethod
    def _text(value):
        if not isinstance(value, str) or not value:
            raise exception.EvidenceError('the vTPM manager sent no signed '
                                          'document')
        return value

    def _call(self, method, **arguments):
        request = (hook_server.LOCAL_PROTOCOL + b' ' + method.encode('ascii')
                   + b'\n' + json.dumps(arguments).encode('ascii'))
        deadline = time.monotonic() + self.timeout
        answer = bytearray()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
                server.settimeout(self.timeout)
                server.connect(self.path)
                server.sendall(request)
                server.shutdown(socket.SHUT_WR)
                while len(answer) <= MAX_ANSWER:
                    server.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = server.recv(64 * 1024)
                    if not chunk:
                        break
                    answer += chunk
        except socket.timeout:
            raise exception.TPMConnectionError(
                'the vTPM manager at %s did not answer %s within %s s'
                % (self.path, method, self.timeout))
        except OSError as error:
            raise exception.TPMConnectionError(
                'the vTPM manager of this host cannot be reached at %s '
                '([korora] libvirt_hook_socket): %s'
                % (self.path, error.strerror or error))
        return _parse(bytes(answer), method)


def _parse(answer, method):
    if len(answer) > MAX_ANSWER:
        raise exception.EvidenceError('the vTPM manager\'s answer to %s is '
                                      'larger than %d bytes'
                                      % (method, MAX_ANSWER))
    try:
        reply = json.loads(answer)
    except (ValueError, RecursionError):
        raise exception.EvidenceError('the vTPM manager\'s answer to %s is '
                                      'not JSON' % method)
    if not isinstance(reply, dict) or not ('result' in reply or
                                           'error' in reply):
        raise exception.EvidenceError('the vTPM manager\'s answer to %s is '
                                      'malformed' % method)
    if 'error' in reply:
        message = 'the vTPM manager refused %s: %s' % (
            method, reply['error'])
        if isinstance(reply.get('item'), str):
            raise exception.MeasurementFailed(message, reply['item'])
        raise exception.TPMError(message)
    return reply['result']
