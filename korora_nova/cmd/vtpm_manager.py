"""korora-vtpm-manager: run on every compute host."""

import sys

from oslo_service import service

from korora_nova.cmd import daemon
from korora_nova import exception
from korora_nova.vtpm_manager import service as manager_service


def main(argv=None):
    conf = daemon.prepare('korora-vtpm-manager', argv)
    try:
        launcher = service.launch(
            conf, manager_service.VTPMManagerService(conf), workers=1,
            restart_method='mutate')
        launcher.wait()
    except exception.KororaError as error:
        print('korora-vtpm-manager: %s' % error, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
