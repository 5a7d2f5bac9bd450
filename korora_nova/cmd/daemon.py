"""What korora's daemons do before they serve: options, logs, backend."""

import sys

from oslo_log import log as logging
from oslo_service import backend

from korora_nova import conf

CONF = conf.CONF


def prepare(name, argv=None):
    """Parse options and set up logging for daemon `name`."""
    # Our daemons need no eventlet: native threads serve RPC and timers.
    backend.init_backend(backend.BackendType.THREADING)
    logging.register_options(CONF)
    CONF(sys.argv[1:] if argv is None else argv, project='korora',
         prog=name)
    logging.setup(CONF, 'korora')
    return CONF
