"""What korora's daemons do before they serve: backend, options, logs.

Import this module before anything that imports oslo_service.service:
that import would otherwise select oslo.service's eventlet backend. Our
daemons need no eventlet: native threads serve RPC and timers.
"""

import sys

from oslo_log import log as logging
from oslo_service import backend

from korora_nova import conf
from korora_nova import exception

backend.init_backend(backend.BackendType.THREADING)

CONF = conf.CONF


def prepare(name, argv=None):
    """Parse options and set up logging for daemon `name`."""
    conf.register_host_opt(CONF)
    logging.register_options(CONF)
    logging.set_defaults(default_log_levels=logging.get_default_log_levels()
                         + ['alembic=WARN'])
    CONF(sys.argv[1:] if argv is None else argv, project='korora',
         prog=name)
    logging.setup(CONF, 'korora')
    return CONF


def fail(name, error):
    """Say why the daemon cannot start, and return its exit status."""
    print('%s: cannot start: %s' % (name, error), file=sys.stderr)
    logging.getLogger(name).error('cannot start: %s', error)
    return 1


def no_database(name, conf):
    """Hold a compute host's daemon to the trust boundary: it must not be
    given [korora_database] credentials (ConfigurationError), and nothing
    in it may use the database afterwards."""
    from korora_nova.db import api as db

    db.refuse_configured_connection(conf, name)
    db.disable_db_access(name)


def serve(name, service_module, argv=None, database=True):
    """Run a daemon: options, preflight in this process (a broken set-up
    ends it with the reason instead of a restart loop after the fork),
    then the service until it stops. Returns the exit status.

    database=False: a compute host's daemon, see no_database().
    """
    conf = prepare(name, argv)
    try:
        if not database:
            no_database(name, conf)
        service_module.preflight(conf)
    except exception.KororaError as error:
        return fail(name, error)
    service_module.launch(conf).wait()
    return 0
