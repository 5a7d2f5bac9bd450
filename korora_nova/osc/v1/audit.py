"""``openstack korora audit verify|head``, ``audit anchor
list|create``."""

from osc_lib.cli import format_columns
from osc_lib.command import command

from korora_nova.osc.v1 import common

FIELDS = ('ok', 'entries', 'first_seq', 'last_seq', 'head_hash', 'anchors',
          'last_anchor_seq', 'last_anchor_host', 'unanchored', 'problems',
          'warnings', 'summary')


def _failure(problems):
    """One line: how many problems, and the first as korora-manage
    names it (its row, else its seq)."""
    if not problems:
        return 'audit log TAMPERED'
    first = problems[0]
    return 'audit log TAMPERED: %d problem%s, the first: %s: %s' % (
        len(problems), '' if len(problems) == 1 else 's',
        first['row'] or 'seq %d' % first['seq'], first['message'])


class VerifyAudit(common.Check):
    """Check the audit log's hash chain, its TPM anchors and every trust
    row it recorded; exit 1 if not intact."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--head', metavar='<seq:hash>',
                            help='A head "korora-manage audit anchor" '
                                 'printed earlier and kept outside the '
                                 'database: the log must still hold it')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            report = common.client(self).audit_verify(
                head=parsed_args.head)['audit']
        if not report['ok']:
            self.failure = _failure(report['problems'])
        report.update(
            problems=format_columns.ListDictColumn(report['problems']),
            warnings=common.LinesColumn(report['warnings']),
            summary=common.LinesColumn(report['summary']))
        return common.show(report, FIELDS)


HEAD_FIELDS = ('seq', 'entry_hash', 'created_at', 'anchored')
ANCHOR_COLUMNS = ('Seq', 'Host', 'Created At')
ANCHOR_FIELDS = ('seq', 'entry_hash', 'host', 'created_at', 'head')


class ShowAuditHead(command.ShowOne):
    """Show the audit log's newest entry and whether a TPM anchored it
    (nothing when the log is empty)."""

    def take_action(self, parsed_args):
        with common.api_errors():
            head = common.client(self).audit_head()
        if head is None:
            return (), ()
        return common.show(head, HEAD_FIELDS)


class ListAuditAnchor(command.Lister):
    """List the audit log's TPM anchors, the oldest first."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--limit', metavar='<n>', type=int,
                            help='List at most this many anchors')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            anchors = common.client(self).audit_anchors(
                limit=parsed_args.limit)
        return common.listing(anchors, ANCHOR_COLUMNS)


class CreateAuditAnchor(command.ShowOne):
    """Have an enrolled host's TPM sign the audit log's head, as
    korora-manage audit anchor does; keep the printed head (seq:hash)
    outside the database for "audit verify --head"."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='Enrolled host whose TPM signs the head')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            anchor = common.client(self).create_audit_anchor(
                parsed_args.host)
        anchor['head'] = '%d:%s' % (anchor['seq'], anchor['entry_hash'])
        return common.show(anchor, ANCHOR_FIELDS)
