"""``openstack korora host list|show|enroll|delete|attest|set``."""

import logging

from osc_lib.cli import format_columns
from osc_lib.command import command
from osc_lib import exceptions

from korora_nova.osc.v1 import common

LOG = logging.getLogger(__name__)

LIST_COLUMNS = ('Name', 'Policy', 'Trust', 'Verified At', 'Age Seconds',
                'Summary')
SHOW_FIELDS = ('name', 'policy', 'trust', 'verified_at', 'age_seconds',
               'summary', 'reasons', 'ek_type', 'ek_certificate_sha256',
               'ak_name', 'trust_on_first_use', 'enrolled_at', 'verdicts')
ATTEST_FIELDS = ('host', 'trusted', 'evidence_valid', 'policy', 'reasons',
                 'summary', 'verified_at')


def _flat(host):
    """A host with its trust's state, time, age and summary beside its
    other fields."""
    item = dict(host)
    trust = host['trust']
    item.update(trust=trust['state'], verified_at=trust['verified_at'],
                age_seconds=trust['age_seconds'], summary=trust['summary'])
    return item


def _show(host):
    item = _flat(host)
    item['reasons'] = common.reasons(host['trust'].get('reasons'))
    item['verdicts'] = format_columns.ListDictColumn([
        {'created_at': verdict['created_at'], 'trusted': verdict['trusted'],
         'summary': verdict['summary']}
        for verdict in host.get('verdicts', ())])
    return common.show(item, SHOW_FIELDS)


class ListHost(command.Lister):
    """List enrolled compute hosts and their trust."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--limit', metavar='<n>', type=int,
                            help='List at most this many hosts')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            hosts = common.client(self).hosts(limit=parsed_args.limit)
        return common.listing([_flat(host) for host in hosts],
                              LIST_COLUMNS)


class ShowHost(command.ShowOne):
    """Show a host: its trust, the current verdict's reasons, recent
    verdicts."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='Compute host name')
        parser.add_argument('--verdicts', metavar='<n>', type=int,
                            help='How many recent verdicts to show '
                                 '(default 10)')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            host = common.client(self).host(parsed_args.host,
                                            verdicts=parsed_args.verdicts)
        return _show(host)


class EnrollHost(command.ShowOne):
    """Enroll a compute host: its EK certificate chain, its AK by
    credential activation."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='Compute host name ([DEFAULT] host of its '
                                 'nova-compute)')
        parser.add_argument('--policy', metavar='<policy>',
                            help='Reference policy judging the host')
        parser.add_argument('--trust-on-first-use', action='store_true',
                            help='Accept an EK certificate that does not '
                                 'chain to [korora] ek_ca_bundle (logged)')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            host = common.client(self).enroll_host(
                parsed_args.host, policy=parsed_args.policy,
                trust_on_first_use=parsed_args.trust_on_first_use)
        return _show(host)


class DeleteHost(command.Command):
    """Forget enrolled hosts and their trust."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('hosts', metavar='<host>', nargs='+',
                            help='Host(s) to delete')
        return parser

    def take_action(self, parsed_args):
        failed = 0
        for name in parsed_args.hosts:
            try:
                with common.api_errors():
                    common.client(self).delete_host(name)
            except exceptions.CommandError as error:
                LOG.error('Failed to delete host %s: %s', name, error)
                failed += 1
        if failed:
            raise exceptions.CommandError(
                '%d of %d hosts failed to delete.'
                % (failed, len(parsed_args.hosts)))


class AttestHost(common.Check):
    """Attest a host now; exit 1 when it is untrusted."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='Compute host name')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            answer = common.client(self).attest_host(parsed_args.host)
        verdict, host = answer['verdict'], answer['host']
        if not verdict['trusted']:
            self.failure = '%s is untrusted: %s' % (
                host['name'], host['trust']['summary'])
        item = dict(verdict, reasons=common.reasons(verdict['reasons']),
                    summary=host['trust']['summary'],
                    verified_at=host['trust']['verified_at'])
        return common.show(item, ATTEST_FIELDS)


class SetHost(command.Command):
    """Set a host's properties: the policy that judges it."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='Compute host name')
        parser.add_argument('--policy', metavar='<policy>',
                            help='Judge the host by this reference policy')
        return parser

    def take_action(self, parsed_args):
        if parsed_args.policy is not None:
            with common.api_errors():
                common.client(self).set_host_policy(parsed_args.host,
                                                    parsed_args.policy)
