"""Private libvirt "hosts" on this machine, for live-migration tests.

``LibvirtHostFixture`` runs a libvirtd and a virtlogd of their own in a
private mount and PID namespace (``unshare --fork --kill-child --pid
--mount --propagation private --mount-proc``). Inside it, private
folders of the host's root folder are bind-mounted over the places
libvirt and swtpm use::

    <root>/run        over /run               (sockets, pid files)
    <root>/lib        over /var/lib/libvirt   (qemu/, swtpm/<uuid>/tpm2/)
    <root>/log        over /var/log/libvirt   (libvirtd.log, qemu/*.log)
    <root>/swtpm-log  over /var/log/swtpm     (swtpm logs of libvirt)
    <root>/etc        over /etc/libvirt       (a copy, see below)
    <root>/cache      over /var/cache/libvirt (QEMU capability cache)

so neither the machine's libvirt (if any) nor another host, in this
process or another test process, sees or touches them. ``<root>/etc`` is
a copy of /etc/libvirt without its domains, networks, storage pools,
secrets and hooks, with libvirtd.conf, qemu.conf and virtlogd.conf
written anew: a host_uuid of its own (libvirt refuses a migration to
the same host), no authentication on the root-only read-write socket, a
migration port range of its own (free ports below the ephemeral range;
libvirt refuses 127.0.0.1 as migration_host or migration_address, so
migrations give the migrate URI ``tcp://127.0.0.1`` and the listen
address 127.0.0.1 as parameters), no cgroups (the hierarchy is the
machine's: both hosts would name a migrating guest's group
qemu-1-NAME, and the source then retries removing it for a second), no
MAC security driver (DAC stays: QEMU runs as libvirt-qemu, swtpm as
tss), and, with TLS, the migration certificates.
From outside the namespace the host is ``qemu+unix:///system?socket=
<root>/run/libvirt/libvirt-sock`` (``host.uri``); a peer-to-peer
migration's destination URI is that too, which the source libvirtd opens
from its own namespace (the path lies in /tmp, which no mount hides).

Process life: the namespace's first process (PID 1 inside) is a small
Python init (``<root>/namespace-init.py``): it bind-mounts, starts
virtlogd and libvirtd in the foreground, reaps every process that ends
up its child (QEMU and swtpm are reparented to it, and libvirt waits for
them to disappear), and stops libvirtd on SIGTERM. When it exits, the
kernel kills whatever still runs in the namespace (QEMU, swtpm), and the
mounts go with the namespace. The ``unshare`` process is the test
process's child and gets SIGKILL should the test thread that started it
die without cleaning up (PR_SET_PDEATHSIG); ``--kill-child`` then kills
the init and so the whole namespace: no daemon, QEMU or swtpm outlives a
killed test run. Cleanup destroys the guests through libvirt first, then
stops the init, then removes the root folder.

``LibvirtHostPairFixture`` starts two such hosts, ``a`` and ``b``, at
the same time, with optional hook scripts for each (installed into the
host's private /etc/libvirt/hooks/qemu.d/ before libvirtd starts, since
libvirtd only reads hooks at start) and, with ``tls=True``, a test CA of
its own whose certificates both hosts' qemu.conf use for
``VIR_MIGRATE_TLS``.

``availability()`` says why guests cannot run here (None when they can),
so tests can skip with the reason.
"""

import atexit
import functools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid as uuid_module

import fixtures

from korora_nova.tests import rabbitmq

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
VIRSH_TIMEOUT = 120.0
LOG_TAIL = 3000
MIGRATION_PORTS = 8
# Migration ports are taken below Linux's ephemeral range (32768-60999),
# away from libvirt's default range (49152-49215) that other libvirtds use.
PORT_RANGE = (20000, 32000)
MIGRATE_URI = 'tcp://127.0.0.1'
# Where the destination's QEMU listens for the migration stream (libvirt
# refuses 127.0.0.1 as qemu.conf's migration_address, not as the
# migration's listen address parameter).
LISTEN_ADDRESS = '127.0.0.1'
GUEST_MEMORY_MIB = 64
SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
QEMU_BINARY = 'qemu-system-x86_64'
PR_SET_PDEATHSIG = 1
# Where /etc/libvirt's copy puts the migration certificates (the path
# seen inside the namespace, where QEMU reads them as libvirt-qemu).
TLS_DIR_INSIDE = '/etc/libvirt/pki/migrate'

# oslotest points tempfile at a per-test folder: host roots live in the
# process's real temporary folder, with short paths (UNIX socket paths
# are limited to 107 bytes).
_PROCESS_TMP = tempfile.gettempdir()
_ports_lock = threading.Lock()
_ports_taken = set()

# (source below <root>, mount point) in mount order.
MOUNTS = (
    ('run', '/run'),
    ('lib', '/var/lib/libvirt'),
    ('log', '/var/log/libvirt'),
    ('swtpm-log', '/var/log/swtpm'),
    ('etc', '/etc/libvirt'),
    ('cache', '/var/cache/libvirt'),
)
# Left out of the copy of /etc/libvirt: the machine's domains and
# networks (an autostarted default network would make a bridge),
# storage pools, secrets and hooks.
ETC_SKIP = ('qemu', 'secrets', 'storage', 'hooks', 'libvirtd.conf',
            'qemu.conf', 'virtlogd.conf')


class LibvirtHostError(Exception):
    """A host could not be prepared or started, or died."""


def _kill_with_parent():
    """preexec_fn: SIGKILL when the starting thread exits (unshare
    blocks SIGTERM and SIGINT while it waits for its child)."""
    rabbitmq._prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _which(name):
    return shutil.which(name, path=os.environ.get('PATH', '') + ':' +
                        SBIN_PATH)


# Availability


@functools.lru_cache(maxsize=None)
def kvm_usable():
    """True if /dev/kvm opens for reading and writing."""
    try:
        fd = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


@functools.lru_cache(maxsize=None)
def _tcg_available(qemu):
    try:
        result = subprocess.run([qemu, '-accel', 'help'],
                                capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b'tcg' in result.stdout


def domain_type():
    """'kvm' when /dev/kvm is usable, else 'qemu' (TCG)."""
    return 'kvm' if kvm_usable() else 'qemu'


@functools.lru_cache(maxsize=None)
def availability():
    """None if private libvirt hosts with vTPM guests can run here, else
    a one-line reason (for skipTest)."""
    if not sys.platform.startswith('linux'):
        return 'private libvirt hosts need Linux namespaces'
    if os.geteuid() != 0:
        return ('private libvirt hosts need root (bind mounts in a mount '
                'namespace, a system libvirtd)')
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return 'libvirt-python is not installed'
    for binary, package in (('libvirtd', 'libvirt-daemon-system'),
                            ('virtlogd', 'libvirt-daemon-system'),
                            ('virsh', 'libvirt-clients'),
                            (QEMU_BINARY, 'qemu-system-x86'),
                            ('swtpm', 'swtpm'),
                            ('swtpm_setup', 'swtpm-tools'),
                            ('unshare', 'util-linux')):
        if _which(binary) is None:
            return '%s is not installed (Debian package %s)' % (
                binary, package)
    for mount_point in ('/var/lib/libvirt', '/var/log/libvirt',
                        '/var/cache/libvirt', '/etc/libvirt', '/run'):
        if not os.path.isdir(mount_point):
            return ('%s is missing (install libvirt-daemon-system): a '
                    'private host mounts its own folder over it'
                    % mount_point)
    try:
        result = subprocess.run(
            [_which('unshare'), '--fork', '--kill-child', '--pid',
             '--mount', '--propagation', 'private', '--mount-proc',
             'true'], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return 'unshare cannot run: %s' % error
    if result.returncode != 0:
        lines = result.stderr.decode('utf-8', 'replace').strip().splitlines()
        return ('unshare --pid --mount is not permitted here: %s'
                % (lines[-1] if lines else 'exit status %d'
                   % result.returncode))
    if not kvm_usable() and not _tcg_available(_which(QEMU_BINARY)):
        return ('neither KVM (/dev/kvm is not usable) nor TCG (%s -accel '
                'help lists no tcg) can run a guest' % QEMU_BINARY)
    return None


# QEMU capabilities, probed once per test process

_caps_lock = threading.Lock()
_caps = {}
CAPS_FOLDER = ('cache', 'qemu', 'capabilities')


def _seed_capabilities(root):
    """Copy the process's saved QEMU capability files into a new host's
    cache (libvirt checks them against the QEMU binary, libvirtd, kernel
    and CPU, and probes anew if they do not match)."""
    with _caps_lock:
        template = _caps.get('folder')
        if template is None or not os.listdir(template):
            return
        target = os.path.join(root, *CAPS_FOLDER)
        os.makedirs(target, mode=0o755)
        os.chmod(os.path.dirname(target), 0o755)
        for name in os.listdir(template):
            shutil.copy2(os.path.join(template, name), target)


def _save_capabilities(root):
    """Keep the capability files a host probed, for later hosts."""
    source = os.path.join(root, *CAPS_FOLDER)
    try:
        names = [n for n in os.listdir(source) if n.endswith('.xml')]
    except OSError:
        return
    if not names:
        return
    with _caps_lock:
        template = _caps.get('folder')
        if template is None:
            template = tempfile.mkdtemp(prefix='korora-lv-qemucaps-',
                                        dir=_PROCESS_TMP)
            atexit.register(shutil.rmtree, template, True)
            _caps['folder'] = template
        if os.listdir(template):
            return
        for name in names:
            shutil.copy2(os.path.join(source, name), template)


# Ports


def _port_free(port):
    for family, address in ((socket.AF_INET, '0.0.0.0'),
                            (socket.AF_INET6, '::')):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.bind((address, port))
        except OSError as error:
            if family == socket.AF_INET6 and error.errno in (
                    97, 99):    # EAFNOSUPPORT, EADDRNOTAVAIL: no IPv6
                continue
            return False
    return True


def free_port_range(count=MIGRATION_PORTS, attempts=200):
    """(first, last): count consecutive ports free now and not handed
    out to another host of this process."""
    low, high = PORT_RANGE
    with _ports_lock:
        for _ in range(attempts):
            first = random.randrange(low, high - count)
            ports = range(first, first + count)
            if _ports_taken.intersection(ports):
                continue
            if all(_port_free(port) for port in ports):
                _ports_taken.update(ports)
                return first, first + count - 1
    raise LibvirtHostError('found no %d free consecutive ports in %d-%d'
                           % (count, low, high))


def _release_ports(first, last):
    with _ports_lock:
        _ports_taken.difference_update(range(first, last + 1))


# Migration TLS


class MigrationCA(object):
    """A test CA and one server+client certificate pair signed by it,
    for QEMU's migration TLS (ECDSA P-256, valid for 127.0.0.1,
    localhost and this machine's names). Every host of a pair gets the
    same files: each is the server when it receives, the client when it
    sends."""

    FILES = ('ca-cert.pem', 'server-cert.pem', 'server-key.pem',
             'client-cert.pem', 'client-key.pem')

    def __init__(self, common_name='korora test migration CA'):
        from cryptography.hazmat.primitives.asymmetric import ec

        self._ec = ec
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = self._certificate(common_name, self.ca_key, None,
                                         ca=True)
        self.files = {'ca-cert.pem': self._pem(self.ca_cert)}
        for role in ('server', 'client'):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = self._certificate('korora test migration ' + role, key,
                                     (self.ca_cert, self.ca_key),
                                     role=role)
            self.files['%s-cert.pem' % role] = self._pem(cert)
            self.files['%s-key.pem' % role] = self._key_pem(key)

    @staticmethod
    def _names():
        names = ['localhost', socket.gethostname()]
        try:
            names.append(socket.getfqdn())
        except OSError:
            pass
        return sorted(set(n for n in names if n))

    def _certificate(self, common_name, key, issuer, ca=False, role=None):
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID
        from cryptography.x509.oid import NameOID

        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'korora-nova'),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        issuer_cert, issuer_key = issuer or (None, key)
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer_cert.subject if issuer_cert
                                else subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca,
                                                        path_length=None),
                                  critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                       key.public_key()), critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
        else:
            # QEMU wants digitalSignature and keyEncipherment when a key
            # usage extension is present.
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=True, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=False)
            usage = (ExtendedKeyUsageOID.SERVER_AUTH if role == 'server'
                     else ExtendedKeyUsageOID.CLIENT_AUTH)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([usage]), critical=False)
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer_key.public_key()), critical=False)
            alt_names = [x509.DNSName(name) for name in self._names()]
            alt_names += [x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
                          x509.IPAddress(ipaddress.ip_address('::1'))]
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alt_names), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    @staticmethod
    def _pem(cert):
        from cryptography.hazmat.primitives import serialization
        return cert.public_bytes(serialization.Encoding.PEM)

    @staticmethod
    def _key_pem(key):
        from cryptography.hazmat.primitives import serialization
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def install(self, directory):
        """Write the five PEM files QEMU expects into directory. The keys
        are world-readable: QEMU (libvirt-qemu) reads them, and only
        through the namespace's /etc/libvirt, the root folder being
        root's alone."""
        os.makedirs(directory, mode=0o755, exist_ok=True)
        for name in self.FILES:
            path = os.path.join(directory, name)
            with open(path, 'wb') as stream:
                stream.write(self.files[name])
            os.chmod(path, 0o644)


# The namespace's init


NAMESPACE_INIT = r'''
"""PID 1 of a private libvirt host's namespace (korora-nova tests)."""
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

config = json.load(open(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
MS_BIND = 4096


def say(message):
    sys.stderr.write('namespace-init: %s\n' % message)
    sys.stderr.flush()


for source, target in config['mounts']:
    if not os.path.isdir(target):
        os.makedirs(target, mode=0o755)
    if libc.mount(source.encode(), target.encode(), None, MS_BIND,
                  None) != 0:
        say('cannot bind-mount %s over %s: %s'
            % (source, target, os.strerror(ctypes.get_errno())))
        sys.exit(3)

env = {'PATH': config['path'], 'LC_ALL': 'C', 'HOME': '/root'}
stopping = []
children = {}


def stop(signum, frame):
    stopping.append(time.monotonic())
    for name in ('libvirtd', 'virtlogd'):
        if name in children:
            try:
                os.kill(children[name], signal.SIGTERM)
            except ProcessLookupError:
                pass


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)


def spawn(name, argv):
    children[name] = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, cwd='/').pid


spawn('virtlogd', ['virtlogd'])
deadline = time.monotonic() + 30
while not os.path.exists('/run/libvirt/virtlogd-sock'):
    if time.monotonic() > deadline:
        say('virtlogd made no socket within 30 s')
        sys.exit(4)
    pid, status = os.waitpid(-1, os.WNOHANG)
    if pid == children['virtlogd']:
        say('virtlogd exited (status %d)' % status)
        sys.exit(4)
    time.sleep(0.02)
if not stopping:
    spawn('libvirtd', ['libvirtd'])

status = 0
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        continue
    if pid == children.get('libvirtd'):
        if not stopping:
            say('libvirtd exited (status %d)' % status)
        break
# Whatever still runs here (virtlogd, QEMU, swtpm) is killed by the
# kernel when this process exits.
sys.exit(0 if stopping else 5)
'''


# Guests


class Guest(object):
    """A guest started by LibvirtHostFixture.start_guest()."""

    def __init__(self, name, uuid, xml, secret_uuid=None, secret_value=None):
        self.name = name
        self.uuid = uuid
        self.xml = xml
        self.secret_uuid = secret_uuid
        self.secret_value = secret_value

    def __repr__(self):
        return 'Guest(%r, %r)' % (self.name, self.uuid)


def guest_xml(name, uuid, dom_type=None, secret_uuid=None,
              memory_mib=GUEST_MEMORY_MIB, tpm_model='tpm-crb'):
    """A guest with no OS and no disk, a qemu64 CPU and an emulated TPM
    2.0 (its state encrypted with secret_uuid's value when given)."""
    encryption = ("\n        <encryption secret='%s'/>\n      "
                  % secret_uuid if secret_uuid else '')
    return textwrap.dedent("""\
        <domain type='%(type)s'>
          <name>%(name)s</name>
          <uuid>%(uuid)s</uuid>
          <memory unit='MiB'>%(memory)d</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64' machine='q35'>hvm</type></os>
          <cpu mode='custom' match='exact'>
            <model fallback='allow'>qemu64</model>
            <feature policy='disable' name='svm'/>
          </cpu>
          <clock offset='utc'/>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>restart</on_reboot>
          <on_crash>destroy</on_crash>
          <devices>
            <controller type='usb' model='none'/>
            <memballoon model='none'/>
            <tpm model='%(tpm)s'>
              <backend type='emulator' version='2.0'>%(encryption)s</backend>
            </tpm>
          </devices>
        </domain>
        """) % {'type': dom_type or domain_type(), 'name': name,
                'uuid': uuid, 'memory': memory_mib, 'tpm': tpm_model,
                'encryption': encryption}


def secret_xml(secret_uuid, usage_name, private=False):
    """A persistent libvirt secret of usage type vtpm, as Nova defines
    for a vTPM."""
    return ("<secret ephemeral='no' private='%s'><uuid>%s</uuid>"
            "<description>vTPM secret of %s</description>"
            "<usage type='vtpm'><name>%s</name></usage></secret>"
            % ('yes' if private else 'no', secret_uuid, usage_name,
               usage_name))


# A host


def _off_the_hub(function, *args):
    """function(*args) in a native thread when eventlet patched this
    process, as Nova calls libvirt: a migration blocks for seconds, and
    meanwhile the destination's libvirt hook asks a vTPM manager served
    by a green thread of this process."""
    if 'eventlet' not in sys.modules:
        return function(*args)
    from eventlet import patcher

    if patcher.is_monkey_patched('thread'):
        from eventlet import tpool

        return tpool.execute(function, *args)
    return function(*args)


class LibvirtHostFixture(fixtures.Fixture):
    """A private libvirtd (and virtlogd) with its own folders and ports.

    name: a short label (in the root folder's name and in errors).
    hooks: {file name: script text (anything with a newline) or path of
    an executable to copy} installed into the host's
    /etc/libvirt/hooks/qemu.d/ before libvirtd starts.
    tls: a MigrationCA whose files the host's qemu.conf uses for
    migration TLS, or None (then migrate_tls_x509_cert_dir is an empty
    folder and VIR_MIGRATE_TLS fails).
    wait: False to return as soon as the daemons are launched; call
    wait_until_ready() before using the host (LibvirtHostPairFixture
    starts two hosts at once that way).

    Attributes after setUp: root, uri, socket, host_uuid,
    migration_ports (first, last), swtpm_root (the outside path of the
    host's /var/lib/libvirt/swtpm), started_in (seconds), pid (of
    unshare), init_pid (the namespace's PID 1, outside numbering),
    namespace (its PID namespace, 'pid:[N]'), secrets {uuid: value}.
    """

    def __init__(self, name='host', hooks=None, tls=None,
                 start_timeout=START_TIMEOUT, wait=True):
        super().__init__()
        self.name = name
        self.hooks = dict(hooks or {})
        self.tls = tls
        self.start_timeout = start_timeout
        self.wait = wait
        self.root = None
        self.process = None
        self.init_pid = None
        self.namespace = None
        self.started_in = None
        self.migration_ports = None
        self.secrets = {}
        self._connection = None
        self._launched_at = None

    # Where things are

    def path(self, *names):
        """A path below the host's root folder (outside view)."""
        return os.path.join(self.root, *names)

    @property
    def socket(self):
        return self.path('run', 'libvirt', 'libvirt-sock')

    @property
    def uri(self):
        return 'qemu+unix:///system?socket=' + self.socket

    @property
    def swtpm_root(self):
        return self.path('lib', 'swtpm')

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def state_path(self, uuid, version='2.0'):
        """The outside path of a guest's swtpm state file."""
        folder, name = {'2.0': ('tpm2', 'tpm2-00.permall'),
                        '1.2': ('tpm1.2', 'tpm-00.permall')}[version]
        return os.path.join(self.swtpm_root, uuid, folder, name)

    @property
    def logs(self):
        """Log files, most telling first."""
        logs = [self.path('console.log'),
                self.path('log', 'libvirtd.log'),
                self.path('log', 'virtlogd.log')]
        for folder in (self.path('log', 'qemu'),
                       self.path('swtpm-log', 'libvirt', 'qemu')):
            try:
                logs += sorted(os.path.join(folder, name)
                               for name in os.listdir(folder))
            except OSError:
                pass
        return logs

    def log_tail(self, size=LOG_TAIL):
        return '\n'.join('--- %s ---\n%s' % (log, rabbitmq.tail(log, size))
                         for log in self.logs if os.path.exists(log))

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def processes(self):
        """[(pid, command name)] of the processes in the host's PID
        namespace (init, virtlogd, libvirtd, QEMU, swtpm, hooks); QEMU
        runs in a mount namespace libvirt makes for it, but in this PID
        namespace. Empty once the host stopped: every process of the
        namespace is gone when its init has been reaped, and the kernel
        may give the namespace's number to a new one."""
        found = []
        if self.namespace is None or not self.alive():
            return found
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                if os.readlink('/proc/%s/ns/pid' % entry) != self.namespace:
                    continue
                with open('/proc/%s/comm' % entry) as stream:
                    found.append((int(entry), stream.read().strip()))
            except OSError:
                continue
        return found

    # Life cycle

    def _setUp(self):
        reason = availability()
        if reason:
            raise LibvirtHostError('cannot start libvirt host %s: %s'
                                   % (self.name, reason))
        self.root = tempfile.mkdtemp(prefix='korora-lv-%s-' % self.name,
                                     dir=_PROCESS_TMP)
        self.addCleanup(shutil.rmtree, self.root, True)
        self.migration_ports = free_port_range()
        self.addCleanup(_release_ports, *self.migration_ports)
        self.host_uuid = str(uuid_module.uuid4())
        self._prepare()
        self.addCleanup(self.stop)
        self._launch()
        if self.wait:
            self.wait_until_ready()

    def _prepare(self):
        for folder, _ in MOUNTS:
            if folder != 'etc':
                os.mkdir(self.path(folder), 0o755)
        _seed_capabilities(self.root)
        etc = self.path('etc')
        shutil.copytree('/etc/libvirt', etc, symlinks=True,
                        ignore=lambda folder, names: [
                            n for n in names
                            if folder == '/etc/libvirt' and n in ETC_SKIP])
        os.chmod(etc, 0o755)
        self._write(os.path.join(etc, 'libvirtd.conf'), self._libvirtd_conf())
        self._write(os.path.join(etc, 'virtlogd.conf'), VIRTLOGD_CONF)
        tls_dir = os.path.join(etc, 'pki', 'migrate')
        os.makedirs(tls_dir, mode=0o755)
        os.chmod(os.path.join(etc, 'pki'), 0o755)
        if self.tls is not None:
            self.tls.install(tls_dir)
        self._write(os.path.join(etc, 'qemu.conf'), self._qemu_conf(),
                    mode=0o600)
        hooks = os.path.join(etc, 'hooks', 'qemu.d')
        os.makedirs(hooks, mode=0o755)
        os.chmod(os.path.join(etc, 'hooks'), 0o755)
        for name, script in sorted(self.hooks.items()):
            self.install_hook(name, script, _folder=hooks)

    @staticmethod
    def _write(path, text, mode=0o644):
        with open(path, 'w') as stream:
            stream.write(text)
        os.chmod(path, mode)

    def install_hook(self, name, script, _folder=None):
        """Install an executable into the host's hooks/qemu.d/. libvirtd
        reads hooks when it starts: call it before (hooks=...)."""
        if '/' in name or name in ('', '.', '..'):
            raise ValueError('a hook name is a file name: %r' % name)
        path = os.path.join(_folder or self.path('etc', 'hooks', 'qemu.d'),
                            name)
        if '\n' in script:
            with open(path, 'w') as stream:
                stream.write(script)
        else:
            shutil.copyfile(script, path)
        os.chmod(path, 0o755)
        return path

    def _libvirtd_conf(self):
        return textwrap.dedent("""\
            # korora-nova test host %(name)s
            host_uuid = "%(uuid)s"
            listen_tls = 0
            listen_tcp = 0
            unix_sock_group = "root"
            unix_sock_ro_perms = "0777"
            unix_sock_rw_perms = "0700"
            auth_unix_ro = "none"
            auth_unix_rw = "none"
            log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
            """) % {'name': self.name, 'uuid': self.host_uuid}

    def _qemu_conf(self):
        first, last = self.migration_ports
        lines = [
            '# korora-nova test host %s' % self.name,
            'migration_port_min = %d' % first,
            'migration_port_max = %d' % last,
            # No MAC driver: AppArmor profiles would be machine-wide.
            # DAC stays.
            'security_driver = "none"',
            'stdio_handler = "logd"',
            # No cgroups: the hierarchy is the machine's, and two hosts
            # would both name a migrating guest's group qemu-1-NAME.
            'cgroup_controllers = [ ]',
            'migrate_tls_x509_cert_dir = "%s"' % TLS_DIR_INSIDE,
            'migrate_tls_x509_verify = 1',
        ]
        if self.tls is not None:
            lines += ['default_tls_x509_cert_dir = "%s"' % TLS_DIR_INSIDE,
                      'default_tls_x509_verify = 1']
        return '\n'.join(lines) + '\n'

    def _launch(self):
        config = {'mounts': [(self.path(folder), target)
                             for folder, target in MOUNTS],
                  'path': SBIN_PATH}
        with open(self.path('namespace-init.json'), 'w') as stream:
            json.dump(config, stream, indent=1)
        self._write(self.path('namespace-init.py'), NAMESPACE_INIT)
        command = [_which('unshare'), '--fork', '--kill-child', '--pid',
                   '--mount', '--propagation', 'private', '--mount-proc',
                   sys.executable, '-I', self.path('namespace-init.py'),
                   self.path('namespace-init.json')]
        self._launched_at = time.monotonic()
        with open(self.path('console.log'), 'wb') as console:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=console,
                stderr=subprocess.STDOUT, cwd=self.root,
                env={'PATH': SBIN_PATH, 'LC_ALL': 'C'},
                preexec_fn=_kill_with_parent)

    def _children(self):
        """PIDs of unshare's children (one: the namespace's init)."""
        path = '/proc/%d/task/%d/children' % (self.pid, self.pid)
        try:
            with open(path) as stream:
                return [int(pid) for pid in stream.read().split()]
        except OSError:
            pass
        children = []     # a kernel without CONFIG_PROC_CHILDREN
        for entry in os.listdir('/proc'):
            try:
                with open('/proc/%s/stat' % entry) as stream:
                    ppid = int(stream.read().rsplit(')', 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.pid:
                children.append(int(entry))
        return children

    def _find_init(self):
        try:
            pid = self._children()[0]
            namespace = os.readlink('/proc/%d/ns/pid' % pid)
        except (OSError, IndexError, ValueError):
            return False
        if namespace == os.readlink('/proc/self/ns/pid'):
            return False    # not yet in the new PID namespace
        self.init_pid, self.namespace = pid, namespace
        return True

    def wait_until_ready(self):
        """Wait until libvirtd answers on the host's socket."""
        import libvirt

        deadline = self._launched_at + self.start_timeout
        error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LibvirtHostError(
                    'libvirt host %s exited (status %s) before libvirtd '
                    'answered:\n%s' % (self.name, self.process.returncode,
                                       self.log_tail()))
            if self.init_pid is None:
                self._find_init()
            if os.path.exists(self.socket):
                try:
                    connection = libvirt.open(self.uri)
                except libvirt.libvirtError as failure:
                    error = failure
                else:
                    self._connection = connection
                    if self.init_pid is None:
                        self._find_init()
                    self.started_in = time.monotonic() - self._launched_at
                    return
            time.sleep(0.05)
        raise LibvirtHostError(
            'libvirtd of host %s did not answer on %s within %.0f s (last '
            'error: %s):\n%s' % (self.name, self.socket, self.start_timeout,
                                 error, self.log_tail()))

    @property
    def connection(self):
        """A read-write libvirt connection to the host (kept open)."""
        import libvirt

        if self._connection is None:
            self._connection = libvirt.open(self.uri)
        return self._connection

    def stop(self):
        """Destroy the guests, stop libvirtd, and with it the namespace
        (virtlogd, QEMU, swtpm, mounts); SIGKILL what does not stop."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._destroy_guests()
        _save_capabilities(self.root)
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
            self._connection = None
        if self.process.poll() is None:
            if self.init_pid is None:
                self._find_init()
            try:
                if self.init_pid is None:
                    raise ProcessLookupError()
                os.kill(self.init_pid, signal.SIGTERM)
                self.process.wait(STOP_TIMEOUT)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                # --kill-child: the init, and so the namespace, die too.
                self.process.kill()
                self.process.wait()
        self.process = None

    def _destroy_guests(self):
        import libvirt

        try:
            connection = self.connection
            domains = connection.listAllDomains()
        except libvirt.libvirtError:
            return
        for domain in domains:
            try:
                if domain.isActive():
                    domain.destroy()
            except libvirt.libvirtError:
                pass

    # Secrets and guests

    def define_secret(self, secret_uuid, value, usage_name=None,
                      private=False):
        """Define a vtpm secret with this value (bytes or str) on the
        host, and remember the value."""
        if isinstance(value, str):
            value = value.encode('utf-8')
        secret = self.connection.secretDefineXML(
            secret_xml(secret_uuid, usage_name or 'vtpm-' + secret_uuid,
                       private))
        secret.setValue(value)
        self.secrets[secret_uuid] = value
        return secret

    def has_secret(self, secret_uuid):
        """True if the host has this secret (a lookup that fails would
        print libvirt's error on stderr)."""
        return secret_uuid in [secret.UUIDString() for secret in
                               self.connection.listAllSecrets()]

    def start_guest(self, name=None, encrypted=True, secret_value=None,
                    uuid=None, memory_mib=GUEST_MEMORY_MIB, persistent=True):
        """Define (persistent) and start a small guest with a vTPM 2.0.

        encrypted: give the TPM an <encryption secret=...> with a new
        vtpm secret (secret_value, or random) defined on this host.
        Returns a Guest.
        """
        uuid = uuid or str(uuid_module.uuid4())
        name = name or 'guest-' + uuid[:8]
        secret_uuid = None
        if encrypted:
            secret_uuid = str(uuid_module.uuid4())
            secret_value = secret_value or secrets.token_urlsafe(32)
            self.define_secret(secret_uuid, secret_value, 'vtpm-' + name)
            secret_value = self.secrets[secret_uuid]
        xml = guest_xml(name, uuid, secret_uuid=secret_uuid,
                        memory_mib=memory_mib)
        if persistent:
            self.connection.defineXML(xml).create()
        else:
            self.connection.createXML(xml, 0)
        return Guest(name, uuid, xml, secret_uuid, secret_value)

    def domain(self, guest):
        """The host's virDomain for a Guest, a name or a UUID string."""
        key = guest.uuid if isinstance(guest, Guest) else guest
        try:
            uuid_module.UUID(key)
        except ValueError:
            return self.connection.lookupByName(key)
        return self.connection.lookupByUUIDString(key)

    def domains(self, active_only=False):
        """{name: virDomain} of the host's domains."""
        import libvirt

        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if active_only else 0
        return {domain.name(): domain
                for domain in self.connection.listAllDomains(flags)}

    def is_running(self, guest):
        """True if the guest (a Guest or a name) is an active domain on
        this host."""
        name = guest.name if isinstance(guest, Guest) else guest
        return name in self.domains(active_only=True)

    def _secret_uuid_of(self, domain):
        from xml.etree import ElementTree

        tree = ElementTree.fromstring(domain.XMLDesc(0))
        encryption = tree.find('./devices/tpm/backend/encryption')
        return None if encryption is None else encryption.get('secret')

    def copy_secret_to(self, destination, secret_uuid):
        """Define this host's secret on destination (as Nova does before
        a migration) unless it is there already."""
        if destination.has_secret(secret_uuid):
            return
        value = self.secrets.get(secret_uuid)
        if value is None:
            value = self.connection.secretLookupByUUIDString(
                secret_uuid).value()
        usage = self.connection.secretLookupByUUIDString(
            secret_uuid).usageID()
        destination.define_secret(secret_uuid, value, usage)

    def migrate(self, guest, destination, tls=False, paused=False,
                p2p=True, persist=False, copy_secret=True, flags=0,
                params=None, migrate_uri=MIGRATE_URI,
                listen_address=LISTEN_ADDRESS):
        """Live-migrate a guest to destination (a LibvirtHostFixture).

        Flags: VIR_MIGRATE_LIVE, VIR_MIGRATE_PEER2PEER (p2p; else a
        client-managed migrate3 through both connections), +TLS, +PAUSED,
        +PERSIST_DEST|UNDEFINE_SOURCE (persist, as Nova does), | flags.
        copy_secret: define the TPM's secret on the destination first.
        Returns None on success, else libvirt's error message.
        """
        import libvirt

        flags |= libvirt.VIR_MIGRATE_LIVE
        if p2p:
            flags |= libvirt.VIR_MIGRATE_PEER2PEER
        if tls:
            flags |= libvirt.VIR_MIGRATE_TLS
        if paused:
            flags |= libvirt.VIR_MIGRATE_PAUSED
        if persist:
            flags |= (libvirt.VIR_MIGRATE_PERSIST_DEST |
                      libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        parameters = {}
        if migrate_uri:
            parameters[libvirt.VIR_MIGRATE_PARAM_URI] = migrate_uri
        if listen_address:
            parameters[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = (
                listen_address)
        parameters.update(params or {})
        try:
            domain = self.domain(guest)
            if copy_secret:
                secret_uuid = self._secret_uuid_of(domain)
                if secret_uuid:
                    self.copy_secret_to(destination, secret_uuid)
            if p2p:
                _off_the_hub(domain.migrateToURI3, destination.uri,
                             parameters, flags)
            else:
                _off_the_hub(domain.migrate3, destination.connection,
                             parameters, flags)
        except libvirt.libvirtError as error:
            return str(error)
        return None

    def virsh(self, *arguments, timeout=VIRSH_TIMEOUT):
        """Run virsh against this host: (exit status, stdout, stderr)."""
        try:
            result = subprocess.run(
                [_which('virsh'), '-c', self.uri] + list(arguments),
                capture_output=True, timeout=timeout,
                env=dict(os.environ, LC_ALL='C'))
        except subprocess.TimeoutExpired:
            return None, '', 'virsh %s timed out after %.0f s' % (
                ' '.join(arguments), timeout)
        return (result.returncode,
                result.stdout.decode('utf-8', 'replace'),
                result.stderr.decode('utf-8', 'replace'))

    def virsh_migrate(self, guest, destination, tls=False, paused=False,
                      persist=False, copy_secret=True, extra=(),
                      migrate_uri=MIGRATE_URI, listen_address=LISTEN_ADDRESS,
                      timeout=VIRSH_TIMEOUT):
        """`virsh migrate --live --p2p GUEST DEST_URI tcp://127.0.0.1`
        (+--tls, --suspend, --persistent --undefinesource, extra).
        Returns None on success, else virsh's error output."""
        import libvirt

        name = guest.name if isinstance(guest, Guest) else guest
        if copy_secret:
            try:
                secret_uuid = self._secret_uuid_of(self.domain(guest))
                if secret_uuid:
                    self.copy_secret_to(destination, secret_uuid)
            except libvirt.libvirtError as error:
                return str(error)
        arguments = ['migrate', '--live', '--p2p']
        if listen_address:
            arguments += ['--listen-address', listen_address]
        if tls:
            arguments.append('--tls')
        if paused:
            arguments.append('--suspend')
        if persist:
            arguments += ['--persistent', '--undefinesource']
        arguments += list(extra) + [name, destination.uri]
        if migrate_uri:
            arguments.append(migrate_uri)
        status, out, err = self.virsh(*arguments, timeout=timeout)
        if status == 0:
            return None
        return (err.strip() or out.strip() or
                'virsh migrate exited with status %s' % status)


VIRTLOGD_CONF = 'log_outputs = "3:file:/var/log/libvirt/virtlogd.log"\n'


class LibvirtHostPairFixture(fixtures.Fixture):
    """Two private libvirt hosts, a and b, started at the same time.

    hooks_a, hooks_b: hooks for each host (see LibvirtHostFixture).
    tls: True for a CA of this pair's own whose certificates both hosts
    use for migration TLS (then self.ca is the MigrationCA).
    Attributes after setUp: a, b, hosts, ca, started_in (seconds until
    both answered).
    """

    def __init__(self, hooks_a=None, hooks_b=None, tls=False,
                 start_timeout=START_TIMEOUT):
        super().__init__()
        self.hooks_a = hooks_a
        self.hooks_b = hooks_b
        self.tls = tls
        self.start_timeout = start_timeout
        self.ca = None

    def _setUp(self):
        started = time.monotonic()
        if self.tls:
            self.ca = MigrationCA()
        self.a = self.useFixture(LibvirtHostFixture(
            'a', hooks=self.hooks_a, tls=self.ca,
            start_timeout=self.start_timeout, wait=False))
        self.b = self.useFixture(LibvirtHostFixture(
            'b', hooks=self.hooks_b, tls=self.ca,
            start_timeout=self.start_timeout, wait=False))
        self.hosts = (self.a, self.b)
        for host in self.hosts:
            host.wait_until_ready()
        self.started_in = time.monotonic() - started


# Guests as Nova's libvirt driver makes them


def start_nova_guest(host, name, uuid, secret_value=None,
                     memory_mib=GUEST_MEMORY_MIB):
    """Define and start on host (a LibvirtHostFixture) a guest as Nova's
    libvirt driver would for an instance: the domain named as the
    instance (its instance_name_template name) with the instance's
    UUID, and its vTPM secret defined as Nova's Host.create_secret('vtpm',
    instance uuid) does (usage name = the instance's UUID), so the
    driver's _host.get_guest(instance) and _host.find_secret('vtpm',
    instance.uuid) find them. Returns a Guest."""
    secret_uuid = str(uuid_module.uuid4())
    secret_value = secret_value or secrets.token_urlsafe(32)
    host.define_secret(secret_uuid, secret_value, usage_name=uuid)
    xml = guest_xml(name, uuid, secret_uuid=secret_uuid,
                    memory_mib=memory_mib)
    host.connection.defineXML(xml).create()
    return Guest(name, uuid, xml, secret_uuid,
                 host.secrets[secret_uuid])
