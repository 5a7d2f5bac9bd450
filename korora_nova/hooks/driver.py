"""The compute driver korora runs: the configured base driver with the
live-migration hooks mixed in."""

from korora_nova.hooks import precheck


class LiveMigrationHooks:
    """Put before the base driver class; each hook calls the base's method.
    """

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info,
                                           dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        # Runs on the destination: attest the source before anything else.
        applies = precheck.applies(instance)
        if applies:
            precheck.attest_peer(instance, 'source',
                                 (src_compute_info or {}).get('host'))
        dest_check_data = super().check_can_live_migrate_destination(
            context, instance, src_compute_info, dst_compute_info,
            block_migration, disk_over_commit)
        if applies:
            precheck.claim_destination(dest_check_data, instance,
                                       (dst_compute_info or {}).get('host'))
        return dest_check_data

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        # Runs on the source: attest the destination. A named host below
        # microversion 2.30 (Horizon) never met the scheduler: this is the
        # check that refuses it.
        if precheck.applies(instance):
            precheck.attest_peer(
                instance, 'destination',
                precheck.destination_of(context, instance, dest_check_data))
        return super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info)


def hooked(base_class):
    """base_class with Kororā's live-migration hooks."""
    return type('Korora' + base_class.__name__,
                (LiveMigrationHooks, base_class), {})
