"""korora-libvirt-hook: the libvirt hook of a destination host.

Install it (a symbolic link or a copy of the console script, executable,
present when libvirtd starts) as /etc/libvirt/hooks/qemu.d/korora and,
for Xen, /etc/libvirt/hooks/libxl.d/korora. libvirt runs it with
``DOMAIN OPERATION SUB_OPERATION EXTRA`` and the domain XML on stdin;
oslo.config options (--config-file ...) may come before those four.

Exit status 0 lets libvirt go on; 1 refuses the incoming live migration,
with one line starting "Korora: " on stderr. Nothing is ever written on
stdout. See korora_nova.hooks.libvirt_hook.
"""

import sys

from korora_nova.hooks import libvirt_hook


def main(argv=None):
    return libvirt_hook.main(argv)


if __name__ == '__main__':
    sys.exit(main())
