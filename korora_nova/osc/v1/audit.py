"""``openstack korora audit verify``."""

from osc_lib.cli import format_columns

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
