"""korora-libvirt-hook: the hypervisor's backstop on a destination host.

Standard library only (libvirt runs it inside its migration job):
``protocol`` is what it and korora-vtpm-manager say to each other,
``client`` the hook program, ``install`` how korora-manage puts it into
libvirt's hooks folders.
"""
