"""``openstack korora server trust``."""

from osc_lib.command import command
from osc_lib import exceptions
from oslo_utils import uuidutils

from korora_nova.osc.v1 import common

COLUMNS = ('Host', 'Allowed', 'Reason')


def _server_uuid(command, server):
    """The UUID of server (a UUID, else a name Nova resolves)."""
    if uuidutils.is_uuid_like(server):
        return server
    try:
        return command.app.client_manager.compute.find_server(
            server, ignore_missing=False).id
    except Exception as error:
        raise exceptions.CommandError(
            'no server %s: %s' % (server, str(error).splitlines()[0]
                                  if str(error) else type(error).__name__))


class TrustServer(command.Lister):
    """List the hosts an instance may live-migrate to now, and why
    Kororā refuses each other one."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('server', metavar='<server>',
                            help='Server (name or ID)')
        return parser

    def take_action(self, parsed_args):
        uuid = _server_uuid(self, parsed_args.server)
        with common.api_errors():
            hosts = common.client(self).instance_trust(uuid)
        return common.listing(hosts, COLUMNS)
