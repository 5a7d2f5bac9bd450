"""What every ``openstack korora`` command shares: korora-api's errors
as OSC's, and its answers as osc-lib columns."""

import contextlib

from cliff import columns
from osc_lib.command import command
from osc_lib import exceptions
from osc_lib import utils

from korora_nova import exception


@contextlib.contextmanager
def api_errors():
    """korora-api's refusal as a CommandError: OSC prints its one line
    ("korora-api: DETAIL (HTTP N)") and exits 1, without a traceback."""
    try:
        yield
    except exception.KororaError as error:
        raise exceptions.CommandError(str(error))


def client(command):
    return command.app.client_manager.korora


class LinesColumn(columns.FormattableColumn):
    """Lines in their order, one a line in a table (osc-lib's
    ListColumn sorts them and joins them with commas)."""

    def human_readable(self):
        return '\n'.join(self._value or ())

    def machine_readable(self):
        return list(self._value or ())


def reasons(items):
    """A verdict's reasons, "code: message" each."""
    return LinesColumn(['%s: %s' % (item['code'], item['message'])
                        for item in items or ()])


def show(item, fields, formatters=None):
    """A ShowOne's (columns, values) of the item's fields, in order."""
    return fields, utils.get_dict_properties(item, fields,
                                             formatters=formatters or {})


def listing(items, columns, formatters=None):
    """A Lister's (headers, rows); a header names the key in lower case
    with underscores ("Verified At": verified_at)."""
    return columns, (utils.get_dict_properties(item, columns,
                                               formatters=formatters or {})
                     for item in items)


class Check(command.ShowOne):
    """A ShowOne whose answer can be negative: it prints the answer,
    then, if take_action set ``failure``, exits 1 with that one line (as
    korora-manage exits 1)."""

    failure = None

    def run(self, parsed_args):
        self.failure = None
        status = super().run(parsed_args)
        if self.failure:
            raise exceptions.CommandError(self.failure)
        return status
