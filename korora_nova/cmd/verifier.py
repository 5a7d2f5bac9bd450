"""korora-verifier: run centrally; [korora] verifier_workers processes."""

import sys

from korora_nova.cmd import daemon  # first: selects native threads
from korora_nova import exception
from korora_nova.verifier import service as verifier_service

NAME = 'korora-verifier'


def main(argv=None):
    conf = daemon.prepare(NAME, argv)
    try:
        verifier_service.preflight(conf)
    except exception.KororaError as error:
        return daemon.fail(NAME, error)
    verifier_service.launch(conf).wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
