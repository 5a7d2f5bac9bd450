"""korora-vtpm-manager: run on every compute host.

It holds the host's TPM and no database credentials: a configured
[korora_database] connection stops it at start-up.
"""

import sys

from korora_nova.cmd import daemon  # first: selects native threads
from korora_nova.vtpm_manager import service


def main(argv=None):
    return daemon.serve('korora-vtpm-manager', service, argv,
                        database=False)


if __name__ == '__main__':
    sys.exit(main())
