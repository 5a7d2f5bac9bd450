"""Schema migrations (alembic): what `korora-manage db sync` runs."""

import os

from alembic import command
from alembic import config as alembic_config
from alembic import migration as alembic_migration

from korora_nova.db import api


def _config(connection):
    config = alembic_config.Config()
    config.set_main_option('script_location', os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'migrations'))
    config.attributes['connection'] = connection
    return config


def db_sync(revision='head'):
    """Bring the database to the given revision (the latest by default)."""
    engine = api.get_engine()
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def head_version():
    """The revision the code expects."""
    from alembic import script
    return script.ScriptDirectory.from_config(_config(None)).get_current_head()


def db_version():
    engine = api.get_engine()
    with engine.connect() as connection:
        return alembic_migration.MigrationContext.configure(
            connection).get_current_revision()
