"""``openstack korora policy list|show|import|record|activate|
deactivate``."""

from osc_lib.cli import format_columns
from osc_lib.command import command

from korora_nova.attestation import pcr_values as pcr_module
from korora_nova.attestation import policy as policy_module
from korora_nova.osc.v1 import common

LIST_COLUMNS = ('Name', 'Version', 'Active', 'Signed', 'Signature Problem',
                'Imported At')
SHOW_FIELDS = ('name', 'version', 'active', 'signed', 'signature_problem',
               'imported_at', 'document', 'signature')
FORMATTERS = {'document': format_columns.DictColumn}


def _version(parser):
    parser.add_argument('name', metavar='<name>', help='Policy name')
    parser.add_argument('version', metavar='<version>', type=int,
                        help='Policy version')
    return parser


class ListPolicy(command.Lister):
    """List reference policy versions, whether an operator key the
    verifier trusts signed each."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--name', metavar='<name>',
                            help='Only the versions of this policy')
        parser.add_argument('--limit', metavar='<n>', type=int,
                            help='List at most this many versions')
        return parser

    def take_action(self, parsed_args):
        with common.api_errors():
            versions = common.client(self).policies(
                name=parsed_args.name, limit=parsed_args.limit)
        return common.listing(versions, LIST_COLUMNS)


class ShowPolicy(command.ShowOne):
    """Show a policy version: its document and signature (the newest
    version unless --version names one)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('name', metavar='<name>', help='Policy name')
        parser.add_argument('--policy-version', metavar='<version>',
                            type=int, dest='version',
                            help='Policy version (default: the newest)')
        return parser

    def take_action(self, parsed_args):
        client = common.client(self)
        with common.api_errors():
            version = parsed_args.version
            if version is None:
                version = client.policy(
                    parsed_args.name)['policy']['versions'][0]['version']
            item = client.policy_version(parsed_args.name, version)
        return common.show(item, SHOW_FIELDS, FORMATTERS)


# Not --version: openstack's own option, whatever follows the command,
# prints the client's version and exits 0.


def _signing_key(parser):
    parser.add_argument('--signing-key', metavar='<operator-key.pem>',
                        required=True,
                        help='The operator\'s EC P-256 private key (PEM, '
                             'unencrypted); it does not leave this '
                             'machine. The verifier accepts the version '
                             'only if its public key is in [korora] '
                             'policy_signing_keys.')
    parser.add_argument('--inactive', action='store_true',
                        help='Import without activating it')
    return parser


class ImportPolicy(command.ShowOne):
    """Import a policy file (JSON), signed here with the operator's key,
    as korora-manage policy import does."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('file', metavar='<file>',
                            help='Policy file (JSON: name, version, pcrs)')
        return _signing_key(parser)

    def take_action(self, parsed_args):
        with common.api_errors():
            reference = policy_module.load(parsed_args.file)
            key = policy_module.load_signing_key(parsed_args.signing_key)
            item = common.client(self).import_policy(
                reference.to_json(), policy_module.sign(reference, key),
                active=not parsed_args.inactive)
        return common.show(item, SHOW_FIELDS, FORMATTERS)


class RecordPolicy(command.ShowOne):
    """Record what a known-good enrolled host quotes now as a policy, as
    korora-manage policy record does: the verifier quotes the host and
    verifies the quote, this machine signs the policy of exactly those
    PCR values with the operator's key, and imports it."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='Enrolled known-good host to quote')
        parser.add_argument('name', metavar='<name>', help='Policy name')
        parser.add_argument('--policy-version', metavar='<version>',
                            type=int, default=1, dest='version',
                            help='Policy version (default 1)')
        return _signing_key(parser)

    def take_action(self, parsed_args):
        with common.api_errors():
            # The key first: a bad key file quotes nothing.
            key = policy_module.load_signing_key(parsed_args.signing_key)
            client = common.client(self)
            quote = client.quote_host(parsed_args.host)
            reference = policy_module.from_values(
                parsed_args.name, parsed_args.version,
                pcr_module.from_json(quote['pcr_values']))
            item = client.import_policy(
                reference.to_json(), policy_module.sign(reference, key),
                active=not parsed_args.inactive)
        return common.show(item, SHOW_FIELDS, FORMATTERS)


class ActivatePolicy(command.Command):
    """Accept hosts that match this policy version."""

    def get_parser(self, prog_name):
        return _version(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        with common.api_errors():
            common.client(self).activate_policy(parsed_args.name,
                                                parsed_args.version)


class DeactivatePolicy(command.Command):
    """Stop accepting hosts that match only this policy version."""

    def get_parser(self, prog_name):
        return _version(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        with common.api_errors():
            common.client(self).deactivate_policy(parsed_args.name,
                                                  parsed_args.version)
