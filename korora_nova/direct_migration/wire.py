"""The lines the two halves of a direct migration exchange.

One JSON object per line, each way, on the pipe the peer command gives
(ssh's stdin and stdout). The source asks ``{"step": NAME, ...}``; the
destination answers ``{"result": ...}`` or ``{"error": "...",
"kind": KIND}``. Nothing on this pipe is evidence: every decision
stands on the verifier's signed answers, which each side asks for
itself. So the wire only has to be bounded and strict.
"""

import json

from korora_nova import exception

# A sealed vTPM secret (hooks.handover.MAX_ENVELOPE) and a migration
# record, with room for JSON's quoting.
MAX_LINE = 64 * 1024

# What an error answer says: the verifier refused a step there, or the
# step failed there (libvirt, a broken configuration).
REFUSED, FAILED = 'refused', 'failed'


def send(stream, message):
    """Write message (a dict) as one line and flush it."""
    line = json.dumps(message, sort_keys=True).encode('ascii') + b'\n'
    if len(line) > MAX_LINE:
        raise exception.PeerError('a message of %d bytes is over the %d '
                                  'a line may have' % (len(line), MAX_LINE))
    try:
        stream.write(line)
        stream.flush()
    except (OSError, ValueError) as error:
        raise exception.PeerError('the pipe is closed: %s' % error)


def receive(stream):
    """The next message (a dict), or None at the end of the stream."""
    try:
        line = stream.readline(MAX_LINE + 1)
    except (OSError, ValueError) as error:
        raise exception.PeerError('the pipe broke: %s' % error)
    if not line:
        return None
    if len(line) > MAX_LINE or not line.endswith(b'\n'):
        raise exception.PeerError('a line is longer than %d bytes or cut '
                                  'short' % MAX_LINE)
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        raise exception.PeerError('a line is not JSON')
    if not isinstance(message, dict):
        raise exception.PeerError('a line is not a JSON object')
    return message


def answer(result):
    return {'result': result}


def error_answer(kind, error):
    return {'error': str(error), 'kind': kind}


def result_of(message, step):
    """The result of an answer to step. StepRefused when the other host
    says the verifier refused it there, PeerError when the step failed
    there or the answer is none or malformed."""
    if message is None:
        raise exception.PeerError('it ended without answering %s' % step)
    if 'error' in message:
        text = message.get('error')
        if not isinstance(text, str):
            raise exception.PeerError('its answer to %s is malformed' % step)
        if message.get('kind') == REFUSED:
            raise exception.StepRefused(text)
        raise exception.PeerError('%s failed there: %s' % (step, text))
    if 'result' not in message:
        raise exception.PeerError('its answer to %s is malformed' % step)
    return message['result']
