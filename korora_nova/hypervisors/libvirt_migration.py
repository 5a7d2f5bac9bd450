"""What Kororā changes in Nova's libvirt live migration.

- The source domain stays defined when the transfer ends (no
  VIR_MIGRATE_UNDEFINE_SOURCE): its vTPM state is still there for the
  source to measure what crossed. Nova's clean-up on the source undefines
  it afterwards, as it does when the flag is off.
- With [korora] verify_before_resume the guest arrives paused
  (VIR_MIGRATE_PAUSED) and resumes only once the manifest checked out.
- The guest's memory and its vTPM state cross inside QEMU's migration
  stream: Kororā refuses a stream without TLS unless the operator allows
  it.
"""

import libvirt

UNENCRYPTED_STREAM = (
    'the migration stream would cross the network unencrypted, vTPM state '
    'included: set [libvirt] live_migration_with_native_tls = true on every '
    'compute (or [korora] allow_unencrypted_migration_stream = true to '
    'accept that risk)')


def migration_flags(flags, verify_before_resume):
    """Nova's migration flags as Kororā needs them."""
    flags &= ~libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    if verify_before_resume:
        flags |= libvirt.VIR_MIGRATE_PAUSED
    return flags


def stream_refusal(flags, allow_unencrypted):
    """Why the migration stream is not acceptable, or None."""
    if flags & libvirt.VIR_MIGRATE_TLS or allow_unencrypted:
        return None
    return UNENCRYPTED_STREAM
