"""The destination's half of a direct migration, as the source runs it:
[korora_direct_migration] peer_command started with the destination's
name, spoken to over its standard input and output (wire)."""

import re
import select
import shlex
import subprocess
import time

from korora_nova import exception
from korora_nova.direct_migration import wire

# A host name as DNS and Nova spell it: nothing a shell or ssh would
# read as an option or a second word.
HOST_NAME = re.compile(r'^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})$')


def checked_host(name):
    if not isinstance(name, str) or not HOST_NAME.match(name):
        raise exception.UsageError('%r is not a host name' % (name,))
    return name


def filled(template, host, option):
    """template with {host} replaced, refusing any other placeholder."""
    try:
        return template.format(host=checked_host(host))
    except (KeyError, IndexError, ValueError) as error:
        raise exception.ConfigurationError(
            '[korora_direct_migration] %s %r: only {host} may be '
            'filled in (%s)' % (option, template, error))


class Peer:
    """The running peer command; close() ends it."""

    def __init__(self, template, host, timeout):
        self.host = host
        self.timeout = timeout
        argv = shlex.split(filled(template, host, 'peer_command'))
        if not argv:
            raise exception.ConfigurationError(
                '[korora_direct_migration] peer_command is empty')
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE)
        except OSError as error:
            raise exception.PeerError('%s cannot be started: %s'
                                      % (argv[0], error))

    def call(self, step, **arguments):
        """The result of step there; StepRefused or PeerError."""
        wire.send(self.process.stdin, dict(arguments, step=step))
        return wire.result_of(self._next_message(step), step)

    def _next_message(self, step):
        deadline = time.monotonic() + self.timeout
        stream = self.process.stdout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise exception.PeerError(
                    '%s on %s did not answer within %.0f s ([korora_direct_'
                    'migration] peer_timeout)' % (step, self.host,
                                                  self.timeout))
            ready, _, _ = select.select([stream], [], [], left)
            if ready:
                return wire.receive(stream)

    def close(self):
        """End the pipe; the peer ends when its input does."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
