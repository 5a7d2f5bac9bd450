"""Policy versions carry their operator's signature (a compact JWS).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# A JWS over a policy of up to 1 MiB is larger than MariaDB's TEXT.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')


def upgrade():
    with op.batch_alter_table('policies') as batch:
        batch.add_column(sa.Column('signature', LongText, nullable=True))
