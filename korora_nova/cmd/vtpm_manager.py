"""korora-vtpm-manager: run on every compute host."""

import sys

from korora_nova.cmd import daemon  # first: selects native threads
from korora_nova import exception
from korora_nova.vtpm_manager import service as manager_service

NAME = 'korora-vtpm-manager'


def main(argv=None):
    conf = daemon.prepare(NAME, argv)
    try:
        # In this process, before the service forks: a broken set-up ends
        # the daemon with its reason instead of a restart loop.
        manager_service.preflight(conf)
    except exception.KororaError as error:
        return daemon.fail(NAME, error)
    manager_service.launch(conf).wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
