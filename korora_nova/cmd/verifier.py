"""korora-verifier: run centrally; [korora] verifier_workers processes."""

import sys

from oslo_service import service

from korora_nova.cmd import daemon
from korora_nova import exception
from korora_nova.verifier import service as verifier_service


def main(argv=None):
    conf = daemon.prepare('korora-verifier', argv)
    try:
        launcher = service.launch(
            conf, verifier_service.VerifierService(conf),
            workers=conf.korora.verifier_workers, restart_method='mutate')
        launcher.wait()
    except exception.KororaError as error:
        print('korora-verifier: %s' % error, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
