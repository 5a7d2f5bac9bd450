"""The hypervisor layer: measuring an instance's state on a compute host.

What runs where:

* On every compute host, inside the Kororā hooks that nova-compute runs
  at the live-migration points (and in the vTPM manager, which owns the
  measurements it seals): an InstanceStateBackend for that host's
  hypervisor.

  - ``libvirt_backend.LibvirtStateBackend``: QEMU/KVM through libvirt
    (``qemu:///system``): the domain XML from a read-only libvirt
    connection, swtpm's state in ``/var/lib/libvirt/swtpm/<uuid>/``,
    the UEFI NVRAM named in ``<os><nvram>``, disks for block migration.
  - ``libvirt_backend.XenStateBackend``: Xen through libvirt's libxl
    driver (``xen:///system``): swtpm-backed vTPMs are measured like on
    KVM; Xen stub-domain vTPMs (vtpm-stubdom) are refused, since Xen's
    own vTPM does not support migration (xen-vtpmmgr(7)).
  - ``file_backend.FileStateBackend``: plain folders, one per fake host,
    for Nova's fake driver and the tests; its copy_instance() is the
    fake live migration, with a hook to tamper with files in flight.

* The source measures the instance's items (``base.Measurement``) when
  the transfer ends; the destination measures the same items on arrival
  and ``base.compare()`` names the items that differ. Nothing here talks
  to the network or to Nova: the hooks carry the measurements.

``domain_xml`` parses a domain definition (bounded, no DTDs or
entities) into the security facts that ``describe()`` returns and the
``domain-security`` item digests.

All of it is blocking code: short libvirt calls (open, lookup, XMLDesc,
close) and file reads. Hashing a disk for a block migration takes as
long as reading the disk: in an eventlet nova-compute, call measure()
through a native thread (eventlet.tpool.execute).
"""
