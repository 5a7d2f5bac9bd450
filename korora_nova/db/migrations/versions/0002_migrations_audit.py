"""Live migrations, the audit log and its TPM anchors.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'migrations',
        sa.Column('uuid', sa.String(36), primary_key=True),
        sa.Column('instance_uuid', sa.String(36), nullable=False),
        sa.Column('source_host', sa.String(255), nullable=False),
        sa.Column('dest_host', sa.String(255), nullable=False),
        sa.Column('state', sa.String(32), nullable=False),
        sa.Column('reason', sa.Text, nullable=True),
        sa.Column('created_at', sa.DateTime, nullable=False),
        sa.Column('updated_at', sa.DateTime, nullable=False),
    )
    op.create_index('migrations_state_idx', 'migrations', ['state'])
    op.create_index('migrations_instance_idx', 'migrations',
                    ['instance_uuid'])
    op.create_table(
        'audit_log',
        sa.Column('seq', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('migration_uuid', sa.String(36), nullable=True),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('step', sa.String(64), nullable=False),
        sa.Column('from_state', sa.String(32), nullable=True),
        sa.Column('to_state', sa.String(32), nullable=True),
        sa.Column('details', sa.Text, nullable=False),
        sa.Column('created_at', sa.DateTime, nullable=False),
        sa.Column('prev_hash', sa.String(64), nullable=False),
        sa.Column('entry_hash', sa.String(64), nullable=False),
    )
    op.create_index('audit_log_migration_idx', 'audit_log',
                    ['migration_uuid'])
    op.create_table(
        'audit_anchors',
        sa.Column('seq', sa.Integer, primary_key=True, autoincrement=False),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('quote_message', sa.LargeBinary, nullable=False),
        sa.Column('quote_signature', sa.LargeBinary, nullable=False),
        sa.Column('pcr_values', sa.Text, nullable=False),
        sa.Column('created_at', sa.DateTime, nullable=False),
    )
