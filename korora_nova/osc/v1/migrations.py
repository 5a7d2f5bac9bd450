"""``openstack korora migration list|show``."""

from osc_lib.cli import format_columns
from osc_lib.command import command

from korora_nova.osc.v1 import common

LIST_COLUMNS = ('UUID', 'Instance UUID', 'Source Host', 'Dest Host',
                'State', 'Reason', 'Updated At')
SHOW_FIELDS = ('uuid', 'instance_uuid', 'source_host', 'dest_host', 'state',
               'final', 'reason', 'recovery', 'created_at', 'updated_at',
               'timeline', 'manifest', 'audit_entries')


class ListMigration(command.Lister):
    """List Kororā's records of live migrations, the most recently
    changed first."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--instance', metavar='<uuid>',
                            help='Only migrations of this instance')
        parser.add_argument('--host', metavar='<host>',
                            help='Only migrations from or to this host')
        parser.add_argument('--state', metavar='<state>',
                            help='Only migrations in this state (e.g. '
                                 'COMMITTED, ABORTED, QUARANTINED)')
        parser.add_argument('--changed-since', metavar='<time>',
                            help='Only migrations changed at or after this '
                                 'time (ISO 8601, e.g. '
                                 '2026-12-01T00:00:00Z)')
        parser.add_argument('--changed-before', metavar='<time>',
                            help='Only migrations changed before this time '
                                 '(ISO 8601)')
        parser.add_argument('--limit', metavar='<n>', type=int,
                            help='List at most this many migrations')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            migrations = common.client(self).migrations(
                instance_uuid=parsed_args.instance, host=parsed_args.host,
                state=parsed_args.state,
                changed_since=parsed_args.changed_since,
                changed_before=parsed_args.changed_before,
                limit=parsed_args.limit)
        return common.listing(migrations, LIST_COLUMNS)


class ShowMigration(command.ShowOne):
    """Show a migration: its timeline, the source's integrity manifest
    and its audit entries."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('migration', metavar='<uuid>',
                            help='Migration UUID')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            item = common.client(self).migration(parsed_args.migration)
        item.update(
            timeline=format_columns.ListDictColumn(item['timeline']),
            audit_entries=format_columns.ListDictColumn(
                item['audit_entries']),
            manifest=(format_columns.DictColumn(item['manifest'])
                      if item['manifest'] else None))
        return common.show(item, SHOW_FIELDS)
