"""The libvirt hook's socket protocol, both ends: the request as
korora-vtpm-manager reads it from a real UNIX socket
(vtpm_manager.hook_server.read_request) and admits it
(vtpm_manager.admission.decide), the manager's answer as the hook reads
it (libvirt_hook.client.parse_answer), the hook's command line
(parse_arguments), and a local call's answer as nova-compute reads it
(vtpm_manager.local_client._parse).

Input: parts(data, 2): the request, the answer.
"""

import socket
import time

from korora_nova.libvirt_hook import client
from korora_nova.libvirt_hook import protocol
from korora_nova.vtpm_manager import admission
from korora_nova.vtpm_manager import hook_server
from korora_nova.vtpm_manager import local_client
from fuzz import common

expected = common.expected(protocol.Refused)


def _read(request):
    one, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with one, other:
        other.sendall(request)
        other.shutdown(socket.SHUT_WR)
        return hook_server.read_request(one, time.monotonic() + 5, 5)


def fuzz_one_input(data):
    request, answer = common.parts(data, 2)
    read = expected(_read, request)
    if read is not None:
        kind, _name, body = read
        if kind == protocol.PROTOCOL:
            for require_for_all in (False, True):
                expected(admission.decide, body, 'compute-2',
                         require_for_all, lambda instance_uuid: [])
    expected(client.parse_answer, answer, '/run/korora/libvirt-hook.sock')
    expected(client.parse_arguments,
             common.text(answer).split(' ')[:8] + ['d', 'migrate', 'b', '-'])
    common.answer(local_client._parse, answer, 'open_transfer')
