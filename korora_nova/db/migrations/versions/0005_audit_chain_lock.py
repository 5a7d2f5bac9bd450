"""The audit log's lock row: appends take it first, one at a time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table(
        'audit_chain_lock',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=False),
    )
    op.bulk_insert(table, [{'id': 1}])
