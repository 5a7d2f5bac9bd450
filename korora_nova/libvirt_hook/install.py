"""Installing korora-libvirt-hook into libvirt's hooks folders.

One piece of code for the operator (``korora-manage libvirt-hook``), the
devstack plugin and the tests that run private libvirtd hosts, so each
installs exactly the same thing.

libvirt >= 6.5 runs every executable in ``<hooks>/qemu.d/`` (QEMU/KVM)
and ``<hooks>/libxl.d/`` (Xen) in turn, so the hook is a file of its own,
``korora``, beside an operator's hooks: a small shell script that ends
at once for every operation but ``migrate`` (libvirt runs hooks for every
start, stop and release of every domain) and otherwise execs the
installed ``korora-libvirt-hook`` (by absolute path: libvirt gives hooks
a minimal environment) with the socket of korora-vtpm-manager and the
time limit ([korora] libvirt_hook_socket and libvirt_hook_timeout of the
installer's configuration). It writes nothing on stdout, which libvirt
would take as the domain XML.

Only a file carrying MARKER is ours: install replaces it atomically
(temporary file and rename in the same folder), remove deletes only it,
and a ``korora`` file without it is left alone unless forced. Folders and
files are opened without following symbolic links, so a link cannot
redirect a write or a removal elsewhere.
"""

import collections
import os
import shlex
import stat
import sys

from korora_nova import exception

DEFAULT_HOOKS_DIR = '/etc/libvirt/hooks'
HOOK_NAME = 'korora'
# libvirt's hook drivers and the folder each one's hooks live in.
FOLDERS = collections.OrderedDict((('qemu', 'qemu.d'),
                                   ('libxl', 'libxl.d')))
HYPERVISORS = tuple(FOLDERS) + ('all',)
MARKER = ('# korora-libvirt-hook wrapper, written by "korora-manage '
          'libvirt-hook install"; "korora-manage libvirt-hook remove" '
          'deletes it.')
SCRIPT_MODE = 0o755
FOLDER_MODE = 0o755
# A file larger than this cannot be one we wrote.
MAX_SCRIPT = 64 * 1024
HOOK_MODULE = 'korora_nova.cmd.libvirt_hook'
CONSOLE_SCRIPT = 'korora-libvirt-hook'
RESTART_NOTE = ('libvirt scans its hooks folders only when the daemon '
                'starts: restart libvirtd (or virtqemud / virtxend with '
                'modular daemons) for this to take effect.')

# States of <folder>/korora, as status reports them.
ABSENT = 'not installed'
CURRENT = 'installed and current'
OUTDATED = ('installed but differs from what install with these options '
            'would write')
NOT_EXECUTABLE = 'installed but not executable (mode %04o)'
FOREIGN = 'a file korora-nova did not write'
NO_FOLDER = 'folder missing'


Outcome = collections.namedtuple('Outcome', ['path', 'state', 'changed'])


def default_command():
    """The argv prefix that runs the hook: the korora-libvirt-hook
    console script beside this Python if installed, else the module."""
    script = os.path.join(os.path.dirname(os.path.abspath(sys.executable)),
                          CONSOLE_SCRIPT)
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [os.path.abspath(sys.executable), '-m', HOOK_MODULE]


def incoming_dir(socket_path):
    """Where the libxl.d hook notes the domains coming in, beside the
    manager's socket (see korora_nova.libvirt_hook.client)."""
    return os.path.join(os.path.dirname(socket_path), 'libxl-incoming')


def hook_script(socket_path, timeout, executable=None, folder='qemu.d'):
    """The text of <folder>/korora.

    socket_path, timeout: where korora-vtpm-manager answers the hook and
    how long the hook waits ([korora] libvirt_hook_socket,
    libvirt_hook_timeout); executable: the hook's path, or an argv
    prefix (default: default_command()). In libxl.d the hook also runs
    for prepare begin, with --incoming-dir: libvirt 9.0's libxl driver
    gives migrate begin no domain XML, so the check happens there.
    """
    if not socket_path or not os.path.isabs(socket_path):
        raise exception.HookInstallError(
            'the socket %r is not an absolute path: set [korora] '
            'libvirt_hook_socket as korora-vtpm-manager has it (an '
            'installed hook would refuse every incoming migration)'
            % (socket_path,))
    if executable is None:
        command = default_command()
    elif isinstance(executable, str):
        command = [executable]
    else:
        command = list(executable)
    command += ['--socket', socket_path, '--timeout', '%g' % timeout]
    operations = ['case "$2" in',
                  '    migrate) ;;',
                  '    *) exit 0 ;;',
                  'esac']
    if folder == FOLDERS['libxl']:
        notes = incoming_dir(socket_path)
        command += ['--incoming-dir', notes]
        # A prepare without the note of an incoming domain is a start
        # on this host: it ends here, without Python (the note's name
        # is the SHA-256 of the domain's name, as the hook writes it).
        operations[2:2] = [
            '    prepare) [ -e %s/"$(printf %%s "$1" | sha256sum | '
            'cut -d" " -f1)" ] || exit 0 ;;' % shlex.quote(notes)]
    for word in command:
        if '\n' in word or '\0' in word:
            raise exception.HookInstallError(
                '%r cannot be written into a hook '
                'script' % word)
    return '\n'.join([
        '#!/bin/sh',
        MARKER,
        '# libvirt runs it with DOMAIN OPERATION SUB_OPERATION EXTRA and',
        '# the domain XML on stdin; stdout must stay empty. Only an',
        '# incoming migration is checked: other operations do not start',
        '# Python at all.'] + operations + [
        'exec %s "$@"' % ' '.join(shlex.quote(word) for word in command),
        ''])


def folders_for(hypervisor):
    """The hooks sub-folders for 'qemu', 'libxl' or 'all'."""
    if hypervisor == 'all':
        return list(FOLDERS.values())
    try:
        return [FOLDERS[hypervisor]]
    except KeyError:
        raise exception.HookInstallError(
            'unknown hypervisor %r: choose one of %s'
            % (hypervisor, ', '.join(HYPERVISORS)))


def _error(path, error):
    return exception.HookInstallError(
        '%s: %s' % (path, error.strerror or error))


def _open_folder(path, dir_fd=None, name=None, create=False):
    """A file descriptor of folder path (name inside dir_fd), refusing
    symbolic links and anything that is not a folder."""
    target = path if dir_fd is None else name
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(target, flags, dir_fd=dir_fd)
    except FileNotFoundError as error:
        if not create:
            raise _error(path, error)
    except OSError as error:
        raise _describe(path, target, dir_fd, error)
    try:
        os.mkdir(target, FOLDER_MODE, dir_fd=dir_fd)
        # The umask may have taken bits away: libvirt must read it.
        fd = os.open(target, flags, dir_fd=dir_fd)
        os.fchmod(fd, FOLDER_MODE)
        return fd
    except FileNotFoundError:
        raise exception.HookInstallError(
            '%s: the folder above it does not exist (is '
            'libvirt installed?)' % path)
    except OSError as error:
        raise _describe(path, target, dir_fd, error)


def _describe(path, target, dir_fd, error):
    """A clear message for a folder that could not be opened."""
    try:
        info = os.stat(target, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return _error(path, error)
    if stat.S_ISLNK(info.st_mode):
        return exception.HookInstallError(
            '%s is a symbolic link: refusing to follow '
            'it' % path)
    if not stat.S_ISDIR(info.st_mode):
        return exception.HookInstallError('%s is not a folder' % path)
    return _error(path, error)


class _Folder:
    """One hooks sub-folder, opened without following links."""

    def __init__(self, hooks_dir, name, create):
        self.name = name
        self.path = os.path.join(hooks_dir, name)
        self.file = os.path.join(self.path, HOOK_NAME)
        self.fd = None
        try:
            top = _open_folder(hooks_dir, create=create)
        except exception.HookInstallError:
            if create or os.path.lexists(hooks_dir):
                raise
            return      # no hooks folder at all: nothing is installed
        try:
            try:
                self.fd = _open_folder(self.path, top, name, create=create)
            except exception.HookInstallError:
                if create or os.path.lexists(self.path):
                    raise
        finally:
            os.close(top)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def lstat(self):
        try:
            return os.stat(HOOK_NAME, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _error(self.file, error)

    def read(self, info):
        """The hook file's text, or None if it cannot be ours."""
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SCRIPT:
            return None
        try:
            fd = os.open(HOOK_NAME, os.O_RDONLY | os.O_NOFOLLOW |
                         os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=self.fd)
        except OSError as error:
            raise _error(self.file, error)
        with os.fdopen(fd, 'rb') as stream:
            data = stream.read(MAX_SCRIPT + 1)
        if len(data) > MAX_SCRIPT:
            return None
        return data.decode('utf-8', 'replace')

    def state(self, wanted):
        """(state, ours) of the hook file against the text wanted."""
        if self.fd is None:
            return NO_FOLDER, False
        info = self.lstat()
        if info is None:
            return ABSENT, False
        text = self.read(info)
        if text is None or MARKER not in text.splitlines():
            return FOREIGN, False
        if text != wanted:
            return OUTDATED, True
        if stat.S_IMODE(info.st_mode) & 0o111 != 0o111:
            return NOT_EXECUTABLE % stat.S_IMODE(info.st_mode), True
        return CURRENT, True

    def write(self, text):
        """Replace the hook file atomically: a new file, then rename."""
        temporary = '.%s.%s.tmp' % (HOOK_NAME, os.urandom(6).hex())
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        except OSError as error:
            raise _error(os.path.join(self.path, temporary), error)
        try:
            with os.fdopen(fd, 'wb') as stream:
                stream.write(text.encode('utf-8'))
                stream.flush()
                os.fchmod(stream.fileno(), SCRIPT_MODE)
                os.fsync(stream.fileno())
            os.rename(temporary, HOOK_NAME, src_dir_fd=self.fd,
                      dst_dir_fd=self.fd)
        except OSError as error:
            try:
                os.unlink(temporary, dir_fd=self.fd)
            except OSError:
                pass
            raise _error(self.file, error)
        os.fsync(self.fd)

    def remove(self):
        try:
            os.unlink(HOOK_NAME, dir_fd=self.fd)
        except FileNotFoundError:
            return
        except OSError as error:
            raise _error(self.file, error)
        os.fsync(self.fd)


def _folders(hooks_dir, hypervisor, create):
    hooks_dir = os.path.abspath(hooks_dir)
    opened = []
    try:
        for name in folders_for(hypervisor):
            opened.append(_Folder(hooks_dir, name, create))
    except BaseException:
        for folder in opened:
            folder.close()
        raise
    return opened


def install(socket_path, timeout, hooks_dir=DEFAULT_HOOKS_DIR,
            hypervisor='all', executable=None, force=False):
    """Install the hook into each folder; returns Outcomes.

    A current hook is left as it is. A ``korora`` file that is not ours
    is replaced only with force; without it nothing is written at all.
    """
    # Checked before any folder is made.
    texts = [hook_script(socket_path, timeout, executable, name)
             for name in folders_for(hypervisor)]
    folders = _folders(hooks_dir, hypervisor, create=True)
    try:
        states = [folder.state(text)[0]
                  for folder, text in zip(folders, texts)]
        if not force:
            for folder, state in zip(folders, states):
                if state == FOREIGN:
                    raise exception.HookInstallError(
                        '%s exists and was not written by korora-nova: '
                        'left alone (--force replaces it)' % folder.file)
        outcomes = []
        for folder, state, text in zip(folders, states, texts):
            if state == CURRENT:
                outcomes.append(Outcome(folder.file, CURRENT, False))
                continue
            info = folder.lstat()
            if info is not None and stat.S_ISDIR(info.st_mode):
                raise exception.HookInstallError('%s is a folder: not replaced'
                                                 % folder.file)
            folder.write(text)
            outcomes.append(Outcome(folder.file, 'installed', True))
        return outcomes
    finally:
        for folder in folders:
            folder.close()


def remove(hooks_dir=DEFAULT_HOOKS_DIR, hypervisor='all'):
    """Remove our hook from each folder; anything else stays."""
    folders = _folders(hooks_dir, hypervisor, create=False)
    try:
        outcomes = []
        for folder in folders:
            state, ours = folder.state(None)
            if ours:
                folder.remove()
                outcomes.append(Outcome(folder.file, 'removed', True))
            else:
                outcomes.append(Outcome(folder.file, state, False))
        return outcomes
    finally:
        for folder in folders:
            folder.close()


def status(socket_path, timeout, hooks_dir=DEFAULT_HOOKS_DIR,
           hypervisor='all', executable=None):
    """Each folder's state against what install would write with the
    same arguments."""
    folders = _folders(hooks_dir, hypervisor, create=False)
    try:
        return [Outcome(folder.file, folder.state(hook_script(
            socket_path, timeout, executable, folder.name))[0], False)
                for folder in folders]
    finally:
        for folder in folders:
            folder.close()
