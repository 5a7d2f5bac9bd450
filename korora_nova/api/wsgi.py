"""korora-api-wsgi: the application for uWSGI, mod_wsgi or Apache
(pbr's wsgi_scripts calls init_application), as devstack runs
Placement's."""

import os

from oslo_log import log as logging

from korora_nova.api import deploy
from korora_nova import conf
from korora_nova.db import api as db

CONF = conf.CONF
LOG = logging.getLogger(__name__)
# Where the configuration is, as Nova's OS_NOVA_CONFIG_DIR and
# OS_NOVA_CONFIG_FILES (files in that folder, or absolute paths,
# separated by ";"): on a node that also runs a vTPM manager,
# korora.conf is the manager's file, and korora-api reads a file of its
# own (devstack: korora-api.conf).
CONFIG_FILES = ('korora.conf',)


def _config_files(environ=os.environ):
    folder = environ.get('OS_KORORA_CONFIG_DIR', '/etc/korora')
    names = [name for name in
             environ.get('OS_KORORA_CONFIG_FILES', '').split(';') if name]
    return [os.path.join(folder, name) for name in names or CONFIG_FILES
            if os.path.exists(os.path.join(folder, name))]


def setup(argv=None, config_files=None):
    """Read the configuration and start logging; korora-api then only
    reads the database (every write goes through the verifier)."""
    conf.register_host_opt(CONF)
    logging.register_options(CONF)
    CONF(argv if argv is not None else [], project='korora',
         default_config_files=(config_files if config_files is not None
                               else _config_files()))
    logging.setup(CONF, 'korora-api')
    db.read_only('korora-api')
    LOG.info('korora-api: reading %s, writing through the verifier on '
             'topic %s', db.safe_url(CONF.korora_database.connection),
             CONF.korora.verifier_topic)


def init_application():
    # The web server's command line is not ours: the configuration comes
    # from OS_KORORA_CONFIG_DIR (default /etc/korora).
    setup([])
    return deploy.deploy(CONF)
