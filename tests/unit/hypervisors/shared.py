"""Real swtpm state files, and what a destination's swtpm does to them.

swtpm writes its state files itself: each test copies one made by a real
swtpm (made once per test process; it takes a few milliseconds).
reencrypt() rewrites an encrypted state the way the destination's swtpm
does after a migration (same TPM state, fresh random IV), and
swtpm_accepts() asks a real swtpm whether it can load a state file.
"""

import atexit
import hashlib
import hmac
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import modes

from korora_nova.hypervisors import libvirt_backend

# What Nova stores as the libvirt secret of a vTPM: a random passphrase.
PASSPHRASE = b'Q2hhbmdlIG1lOiB0aGlzIGlzIGEgdGVzdCBzZWNyZXQgb2YgNjQgYnl0ZXMu'
SECRET_UUID = '6dd3e4a5-1d76-44ce-961f-f119f5aad935'
TIMEOUT = 20

_PROCESS_TMP = tempfile.gettempdir()
_lock = threading.Lock()
_states = {}


def _run_swtpm(directory, version, passphrase, flags):
    sockets = tempfile.mkdtemp(prefix='swtpm-', dir=_PROCESS_TMP)
    ctrl = os.path.join(sockets, 'ctrl')
    argv = ['swtpm', 'socket', '--tpmstate', 'dir=' + directory,
            '--ctrl', 'type=unixio,path=' + ctrl,
            '--server', 'type=unixio,path=' + os.path.join(sockets, 'srv')]
    if version == '2.0':
        argv.append('--tpm2')
    if passphrase is not None:
        password_file = os.path.join(sockets, 'pw')
        with open(password_file, 'wb') as handle:
            handle.write(passphrase)
        argv += ['--key', 'pwdfile=%s,mode=aes-256-cbc' % password_file]
    argv += flags
    process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    # The socket file appears at bind(), before swtpm listens: wait
    # until a connection is accepted.
    deadline = time.monotonic() + TIMEOUT
    while not _listening(ctrl):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0]
            shutil.rmtree(sockets, ignore_errors=True)
            raise RuntimeError('swtpm did not start: %r' % output)
        time.sleep(0.005)
    return process, ctrl, sockets


def _listening(path):
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _ioctl(ctrl, option):
    return subprocess.run(['swtpm_ioctl', '--unix', ctrl, option],
                          capture_output=True, text=True, timeout=TIMEOUT)


def _stop(process, ctrl, sockets):
    try:
        if _ioctl(ctrl, '-s').returncode != 0:
            process.kill()
        output = process.communicate(timeout=TIMEOUT)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(sockets, ignore_errors=True)
    return output


def state_file_name(version):
    return 'tpm2-00.permall' if version == '2.0' else 'tpm-00.permall'


def swtpm_state(version='2.0', passphrase=PASSPHRASE):
    """The bytes of a fresh TPM's state file, written by a real swtpm
    (encrypted under passphrase unless it is None)."""
    key = (version, passphrase)
    with _lock:
        if key not in _states:
            directory = tempfile.mkdtemp(prefix='korora-swtpm-state-',
                                         dir=_PROCESS_TMP)
            atexit.register(shutil.rmtree, directory, True)
            process, ctrl, sockets = _run_swtpm(
                directory, version, passphrase,
                ['--flags', 'not-need-init,startup-clear'])
            _stop(process, ctrl, sockets)
            path = os.path.join(directory, state_file_name(version))
            with open(path, 'rb') as handle:
                _states[key] = handle.read()
        return _states[key]


def swtpm_accepts(data, version='2.0', passphrase=PASSPHRASE):
    """Whether a real swtpm loads this state file (TPM init succeeds)."""
    directory = tempfile.mkdtemp(prefix='korora-swtpm-load-',
                                 dir=_PROCESS_TMP)
    try:
        with open(os.path.join(directory, state_file_name(version)),
                  'wb') as handle:
            handle.write(data)
        process, ctrl, sockets = _run_swtpm(directory, version, passphrase,
                                            [])
        result = _ioctl(ctrl, '-i')
        _stop(process, ctrl, sockets)
        return result.returncode == 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def reencrypt(data, passphrase=PASSPHRASE):
    """The same TPM state encrypted again with a fresh random IV: what
    the destination's swtpm writes after a migration."""
    plaintext = libvirt_backend.swtpm_state_plaintext(data, passphrase)
    key = hashlib.pbkdf2_hmac('sha512', passphrase, b'swtpm', 1000, 32)
    ivec = os.urandom(32)
    padder = padding.PKCS7(256).padder()   # swtpm pads to 32 bytes
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(ivec[:16])).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.new(key, ciphertext + ivec, 'sha256').digest()
    body = b''.join(struct.pack('>HI', tag, len(value)) + value
                    for tag, value in ((2, ciphertext), (3, mac),
                                       (6, ivec)))
    flags = struct.unpack_from('>H', data, 4)[0]
    return struct.pack('>BBHHI', 2, 1, 10, flags, 10 + len(body)) + body


def flip_byte(data, offset):
    changed = bytearray(data)
    changed[offset] ^= 0x01
    return bytes(changed)
