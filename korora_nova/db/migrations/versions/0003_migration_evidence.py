"""What a live migration's hooks hand each other: the signed integrity
manifest and the source's counter value.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')


def upgrade():
    with op.batch_alter_table('migrations') as batch:
        batch.add_column(sa.Column('manifest', LongText, nullable=True))
        batch.add_column(sa.Column('source_counter', sa.BigInteger,
                                   nullable=True))
