"""The ids of korora-api's admin requests, kept until they expire.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'admin_requests',
        sa.Column('jti', sa.String(64), primary_key=True),
        sa.Column('operation', sa.String(64), nullable=False),
        sa.Column('expires_at', sa.DateTime, nullable=False),
    )
