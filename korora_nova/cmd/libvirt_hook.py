"""korora-libvirt-hook: the libvirt hook of a destination host.

``korora-manage libvirt-hook install`` installs it, as a small script
in /etc/libvirt/hooks/qemu.d/korora and libxl.d/korora that passes
--socket and --timeout. libvirt runs it with ``DOMAIN OPERATION
SUB_OPERATION EXTRA`` and the domain XML on stdin; for ``migrate begin``
it asks korora-vtpm-manager on the socket.

Exit status 0 lets libvirt go on; 1 refuses the incoming live migration,
with one line starting "Korora: " on stderr. Nothing is ever written on
stdout. The standard library only, see korora_nova.hooks.libvirt_hook.
"""

import sys

from korora_nova.hooks import libvirt_hook


def main(argv=None):
    return libvirt_hook.main(argv)


if __name__ == '__main__':
    sys.exit(main())
