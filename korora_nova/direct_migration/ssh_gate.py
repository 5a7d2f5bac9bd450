"""The only command a migration peer's ssh key may run on a host.

An operator makes it the forced command of the key that
``[korora_direct_migration] peer_command`` logs in with, in root's
``authorized_keys`` on every Xen host::

    command="korora-manage server ssh-gate",restrict ssh-ed25519 AAAA...

sshd then runs the gate whatever the client asked for, and puts the
client's words in ``SSH_ORIGINAL_COMMAND``. The gate runs the
destination's half of ``korora-manage server migrate`` (``server
receive``, with this host's own configuration, never a path the client
names) when that is what was asked, and refuses anything else.

Why: a plain ``xl migrate`` runs ``xl migrate-receive`` on the
destination over ssh, outside libvirt and so outside Kororā's libxl
hook. Through a gated key it is refused, naming why.
"""

import os

from korora_nova import exception

RECEIVE = ('server', 'receive')
COMMAND = 'korora-manage'
SHOWN = 200     # characters of a refused command named in the refusal


def check(original):
    """Return when original (SSH_ORIGINAL_COMMAND) asks for korora-manage
    server receive; else SSHCommandRefused naming what was refused."""
    words = (original or '').split()
    if (tuple(words[-2:]) == RECEIVE and
            any(os.path.basename(word) == COMMAND for word in words[:-2])):
        return
    shown = ''.join(c if c.isprintable() else '?'
                    for c in (original or '(none)')[:SHOWN])
    raise exception.SSHCommandRefused(
        'Korora: this ssh key may only run korora-manage server receive; '
        'refused %r. A plain xl migrate bypasses libvirt, its hooks and '
        "Korora's attestation: move the domain with korora-manage server "
        'migrate' % shown)
