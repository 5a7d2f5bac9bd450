"""A slow TPM: swtpm behind a proxy that answers each command as late as
a discrete TPM 2.0 chip would, and logs every command.

swtpm answers in about a millisecond; a discrete TPM takes 100 ms or
more for a signature or a key generation (the figures and their sources:
benchmarks/README.rst, "Slow-TPM model"). Benchmarks and tests put the
proxy between a TPMConnection and swtpm's TCP ports to see what a
migration costs on real hardware, and to count the TPM commands of a
migration per host.

The proxy is a process of its own (``python -m korora_nova.demo.
slow_tpm``): the TSS talks to the TPM with blocking calls in C, which an
eventlet-patched caller (Nova's harness, the demo) cannot yield from, so
a proxy in the caller's own process would wait for itself. swtpm's TCTI
uses two ports: P for TPM commands, P+1 for swtpm's control channel. The
proxy listens on its own pair, delays each command's answer by its
command code (DISCRETE_TPM), forwards the control channel as it is,
and appends one line per command to its log: the time it was answered,
the command's name, the delay charged and the TPM's response code.
"""

import argparse
import collections
import os
import socket
import struct
import subprocess
import sys
import threading
import time

# TPM 2.0 command header: tag, size, command code (Part 1, 18.2).
HEADER = struct.Struct('>HII')
# swtpm's largest command buffer.
MAX_COMMAND = 4096
ST_SESSIONS = 0x8002
ALG_RSA = 0x0001
RC_RETRY = 0x922

# Seconds a discrete TPM 2.0 chip takes per command, by TPM2_CC name;
# benchmarks/README.rst names the sources of each figure.
DISCRETE_TPM = {
    'Quote': 0.200,
    'Sign': 0.200,
    'Certify': 0.200,
    'CertifyCreation': 0.200,
    'CreatePrimary': 0.150,     # ECC; RSA: CREATE_RSA
    'Create': 0.150,
    'CreateLoaded': 0.150,
    'Import': 0.100,
    'ActivateCredential': 0.100,
    'Load': 0.020,
    'Unseal': 0.020,
    'NV_Increment': 0.030,
    'NV_Write': 0.030,
    'NV_DefineSpace': 0.030,
    'PCR_Extend': 0.010,
    'PCR_Read': 0.005,
    'NV_Read': 0.005,
    'NV_ReadPublic': 0.005,
    'ReadPublic': 0.005,
    'GetCapability': 0.005,
    'FlushContext': 0.001,
}
CREATE_RSA = 1.0
DEFAULT_DELAY = 0.010
KEY_GENERATIONS = ('CreatePrimary', 'Create', 'CreateLoaded')

Command = collections.namedtuple('Command', 'answered name delay rc')


def command_names():
    """TPM2_CC code -> name ('Quote', 'NV_Read', ...)."""
    from tpm2_pytss.constants import TPM2_CC

    names = {}
    for name in dir(TPM2_CC):
        value = getattr(TPM2_CC, name)
        if name.isupper() or not isinstance(value, int) or name in (
                'FIRST', 'LAST'):
            continue
        names.setdefault(int(value), name)
    return names


def delay_of(name, command, scale):
    """Seconds to charge for command (its bytes), called name."""
    delay = DISCRETE_TPM.get(name, DEFAULT_DELAY)
    if name in KEY_GENERATIONS and _creates_rsa(command):
        delay = CREATE_RSA
    return delay * scale


def _creates_rsa(command):
    """True if a CreatePrimary/Create/CreateLoaded asks for an RSA key:
    its inPublic's type, after the handle, the authorization area and
    inSensitive."""
    try:
        tag, = struct.unpack_from('>H', command)
        offset = HEADER.size + 4                    # the parent handle
        if tag == ST_SESSIONS:
            auth_size, = struct.unpack_from('>I', command, offset)
            offset += 4 + auth_size
        sensitive_size, = struct.unpack_from('>H', command, offset)
        offset += 2 + sensitive_size + 2            # inPublic's size
        kind, = struct.unpack_from('>H', command, offset)
    except struct.error:
        return False
    return kind == ALG_RSA


# The proxy process

def _read_exactly(stream, size):
    data = b''
    while len(data) < size:
        chunk = stream.recv(size - len(data))
        if not chunk:
            raise EOFError('closed')
        data += chunk
    return data


def _read_message(stream):
    """One TPM command or response, bounded."""
    header = _read_exactly(stream, HEADER.size)
    _, size, _ = HEADER.unpack(header)
    if not HEADER.size <= size <= MAX_COMMAND:
        raise ValueError('a TPM message of %d bytes' % size)
    return header + _read_exactly(stream, size - HEADER.size)


class _Proxy:
    def __init__(self, port, upstream, scale, log_path):
        self.port = port
        self.upstream = upstream
        self.scale = scale
        self.log = open(log_path, 'a', buffering=1)
        self.lock = threading.Lock()
        self.names = command_names()

    def serve(self, ready_path):
        listeners = []
        for offset, handler in ((0, self._commands), (1, self._control)):
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(('127.0.0.1', self.port + offset))
            listener.listen(8)
            listeners.append((listener, offset, handler))
        for listener, offset, handler in listeners:
            threading.Thread(target=self._accept,
                             args=(listener, offset, handler),
                             daemon=True).start()
        with open(ready_path + '.tmp', 'w') as ready:
            ready.write(str(os.getpid()))
        os.rename(ready_path + '.tmp', ready_path)
        threading.Event().wait()

    def _accept(self, listener, offset, handler):
        while True:
            client, _ = listener.accept()
            threading.Thread(target=self._connection,
                             args=(client, offset, handler),
                             daemon=True).start()

    def _connection(self, client, offset, handler):
        try:
            server = socket.create_connection(
                ('127.0.0.1', self.upstream + offset))
        except OSError as error:
            sys.stderr.write('slow TPM: swtpm unreachable: %s\n' % error)
            client.close()
            return
        try:
            handler(client, server)
        except (EOFError, OSError):
            pass
        except ValueError as error:
            sys.stderr.write('slow TPM: closing a connection: %s\n' % error)
        finally:
            client.close()
            server.close()

    def _commands(self, client, server):
        while True:
            command = _read_message(client)
            code = HEADER.unpack_from(command)[2]
            name = self.names.get(code, '0x%08x' % code)
            server.sendall(command)
            response = _read_message(server)
            # TPM_RC_RETRY: the TPM asks for the command again without
            # running it (swtpm does for its first signature); a real
            # TPM answers that at once too.
            rc = HEADER.unpack_from(response)[2]
            delay = 0.0 if rc == RC_RETRY else delay_of(name, command,
                                                        self.scale)
            time.sleep(delay)
            # Logged before the caller has its answer, so that what it
            # counts next includes this command.
            with self.lock:
                self.log.write('%.6f %s %.6f 0x%x\n'
                               % (time.time(), name, delay, rc))
            client.sendall(response)

    @staticmethod
    def _control(client, server):
        def pump(source, sink):
            try:
                while True:
                    data = source.recv(65536)
                    if not data:
                        break
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, sink):
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        back = threading.Thread(target=pump, args=(server, client),
                                daemon=True)
        back.start()
        pump(client, server)
        back.join()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--upstream', type=int, required=True)
    parser.add_argument('--scale', type=float, default=1.0)
    parser.add_argument('--log', required=True)
    parser.add_argument('--ready', required=True)
    args = parser.parse_args(argv)
    _Proxy(args.port, args.upstream, args.scale, args.log).serve(args.ready)


# What a benchmark or a test uses

class SlowTPM:
    """The proxy in front of the swtpm at upstream_port (its command
    port). scale multiplies every delay (0: count only)."""

    def __init__(self, upstream_port, folder, scale=1.0):
        self.upstream_port = upstream_port
        self.folder = folder
        self.scale = scale
        self.port = None
        self.process = None
        self.log_path = os.path.join(folder, 'slow-tpm.log')

    @property
    def tcti(self):
        return 'swtpm:host=127.0.0.1,port=%d' % self.port

    def start(self):
        from korora_nova.tpm import swtpm

        self.port = swtpm.free_port_pair()
        ready = os.path.join(self.folder, 'slow-tpm.ready')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'korora_nova.demo.slow_tpm',
             '--port', str(self.port), '--upstream',
             str(self.upstream_port), '--scale', str(self.scale),
             '--log', self.log_path, '--ready', ready])
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self.process.poll() is not None or (
                    time.monotonic() > deadline):
                self.stop()
                raise RuntimeError('the slow-TPM proxy did not start')
            time.sleep(0.02)

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def commands(self):
        """Every command answered so far (Command tuples), oldest first."""
        if not os.path.exists(self.log_path):
            return []
        found = []
        with open(self.log_path) as log:
            for line in log:
                answered, name, delay, rc = line.split()
                found.append(Command(float(answered), name, float(delay),
                                     int(rc, 16)))
        return found

    def mark(self):
        return len(self.commands())

    def since(self, mark):
        """collections.Counter of the commands the TPM ran since mark
        (a TPM_RC_RETRY answer ran nothing: its command is sent again)."""
        return collections.Counter(c.name for c in self.commands()[mark:]
                                   if c.rc != RC_RETRY)


def key_generations(counts):
    return sum(counts.get(name, 0) for name in KEY_GENERATIONS)


def on_the_path(role, commands):
    """(Counter of the commands on the migration's path, Counter of the
    manager's background work) among a host's commands (slow_tpm.Command
    tuples) while one migration ran, by the protocol's shape: a PCR read
    is the PCR watch's (a migration's quotes reuse the values last read,
    unless a PCR changed meanwhile), and what the destination's TPM does
    after its last quote (the arrival's) is the flush of the used key and
    the next key made ahead, beside the source's commit."""
    done = [c for c in commands if c.rc != RC_RETRY]
    last_quote = max((n for n, c in enumerate(done) if c.name == 'Quote'),
                     default=-1)
    path, background = collections.Counter(), collections.Counter()
    for number, command in enumerate(done):
        if command.name == 'PCR_Read' or (
                role == 'dest' and number > last_quote >= 0):
            background[command.name] += 1
        else:
            path[command.name] += 1
    return path, background


if __name__ == '__main__':
    main()
