"""korora-libvirt-hook: the libvirt hook of a destination host.

``korora-manage libvirt-hook install`` installs it, as a small script
in /etc/libvirt/hooks/qemu.d/korora and libxl.d/korora that passes
--socket and --timeout. libvirt runs it with ``DOMAIN OPERATION
SUB_OPERATION EXTRA`` and the domain XML on stdin; for ``migrate begin``
it asks korora-vtpm-manager on the socket.

Exit status 0 lets libvirt go on; 1 refuses the incoming live migration,
with one line starting "Korora: " on stderr. Nothing is ever written on
stdout. The standard library only, see korora_nova.libvirt_hook.client.

It holds no database credentials: it reads no configuration file (its
only options are --socket and --timeout; any other refuses the
migration), and its main() makes the database layer unimportable in
its process, the hook's counterpart of
korora_nova.db.api.disable_db_access, without importing that layer.
"""

import sys

from korora_nova.libvirt_hook import client as libvirt_hook

PROG = libvirt_hook.PROG
# The packages a process that used the verifier database would import.
DATABASE_PACKAGES = ('korora_nova.db', 'oslo_db', 'sqlalchemy')


class NoDatabase:
    """A meta path finder that refuses to import the database layer."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith(tuple(p + '.' for p in DATABASE_PACKAGES)) or (
                name in DATABASE_PACKAGES):
            raise ImportError(
                '%s has no database access: only korora-verifier and '
                'korora-manage on the control plane use [korora_database] '
                '(import of %s refused)' % (PROG, name), name=name)
        return None


def disable_db_access():
    """Make the database layer unimportable in this process."""
    if not any(isinstance(finder, NoDatabase) for finder in sys.meta_path):
        sys.meta_path.insert(0, NoDatabase())


def main(argv=None):
    disable_db_access()
    return libvirt_hook.main(argv)


if __name__ == '__main__':
    sys.exit(main())
