"""korora-verifier: run centrally; [korora] verifier_workers processes."""

import sys

from korora_nova.cmd import daemon  # first: selects native threads
from korora_nova.verifier import service


def main(argv=None):
    return daemon.serve('korora-verifier', service, argv)


if __name__ == '__main__':
    sys.exit(main())
