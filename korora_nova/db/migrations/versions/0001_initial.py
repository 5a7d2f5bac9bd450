"""Initial schema: hosts, policies, verdicts, host_trust.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op
from sqlalchemy.dialects import mysql
import sqlalchemy as sa

Name = sa.String(255).with_variant(
    mysql.VARCHAR(255, collation='utf8mb4_bin'), 'mysql', 'mariadb')
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'hosts',
        sa.Column('id', sa.Integer, primary_key=True),
        sa.Column('name', Name, nullable=False),
        sa.Column('ek_type', sa.String(32), nullable=False),
        sa.Column('ek_certificate', sa.LargeBinary, nullable=False),
        sa.Column('ek_certificate_sha256', sa.String(64), nullable=False),
        sa.Column('ek_public', sa.LargeBinary, nullable=False),
        sa.Column('ak_public', sa.LargeBinary, nullable=False),
        sa.Column('ak_name', sa.String(140), nullable=False),
        sa.Column('trust_on_first_use', sa.Boolean, nullable=False),
        sa.Column('policy_name', Name, nullable=True),
        sa.Column('enrolled_at', sa.DateTime, nullable=False),
        sa.Column('next_attestation_at', sa.DateTime, nullable=False),
        sa.Column('last_reset_count', sa.BigInteger, nullable=True),
        sa.Column('last_clock', sa.BigInteger, nullable=True),
        sa.UniqueConstraint('name', name='uniq_hosts0name'),
    )
    op.create_table(
        'policies',
        sa.Column('id', sa.Integer, primary_key=True),
        sa.Column('name', Name, nullable=False),
        sa.Column('version', sa.Integer, nullable=False),
        sa.Column('document', LongText, nullable=False),
        sa.Column('active', sa.Boolean, nullable=False),
        sa.Column('created_at', sa.DateTime, nullable=False),
        sa.UniqueConstraint('name', 'version',
                            name='uniq_policies0name0version'),
    )
    op.create_table(
        'verdicts',
        sa.Column('id', sa.Integer, primary_key=True),
        sa.Column('host_name', Name, nullable=False),
        sa.Column('trusted', sa.Boolean, nullable=False),
        sa.Column('summary', sa.Text, nullable=False),
        sa.Column('reasons', sa.Text, nullable=False),
        sa.Column('policy', sa.String(300), nullable=True),
        sa.Column('nonce', sa.String(128), nullable=True),
        sa.Column('pcr_values', sa.Text, nullable=True),
        sa.Column('quote_message', sa.LargeBinary, nullable=True),
        sa.Column('quote_signature', sa.LargeBinary, nullable=True),
        sa.Column('created_at', sa.DateTime, nullable=False),
    )
    op.create_index('verdicts_host_created_idx', 'verdicts',
                    ['host_name', 'created_at'])
    op.create_table(
        'host_trust',
        sa.Column('host_name', Name, primary_key=True),
        sa.Column('trusted', sa.Boolean, nullable=False),
        sa.Column('summary', sa.Text, nullable=False),
        sa.Column('verified_at', sa.DateTime, nullable=False),
        sa.Column('verdict_id', sa.Integer, nullable=False),
    )
