"""Alembic environment: runs on the connection korora_nova.db.migration
hands over."""

from alembic import context

from korora_nova.db import models

config = context.config
connection = config.attributes['connection']
context.configure(connection=connection,
                  target_metadata=models.BASE.metadata,
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
