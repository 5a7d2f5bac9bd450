"""SQLAlchemy models of the verifier's database.

``verdicts`` is the audit history (append-only); ``host_trust`` holds one
row per host with its current verdict, which is all the scheduler filter
reads.
"""

from oslo_db.sqlalchemy import models
from sqlalchemy import orm
import sqlalchemy as sa

BASE = orm.declarative_base(cls=models.ModelBase)


class Host(BASE):
    __tablename__ = 'hosts'
    __table_args__ = (sa.UniqueConstraint('name', name='uniq_hosts0name'),)

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(255), nullable=False)
    ek_type = sa.Column(sa.String(32), nullable=False)
    ek_certificate = sa.Column(sa.LargeBinary, nullable=False)
    ek_certificate_sha256 = sa.Column(sa.String(64), nullable=False)
    ek_public = sa.Column(sa.LargeBinary, nullable=False)
    ak_public = sa.Column(sa.LargeBinary, nullable=False)
    ak_name = sa.Column(sa.String(140), nullable=False)
    trust_on_first_use = sa.Column(sa.Boolean, nullable=False,
                                   default=False)
    policy_name = sa.Column(sa.String(255), nullable=True)
    enrolled_at = sa.Column(sa.DateTime, nullable=False)
    next_attestation_at = sa.Column(sa.DateTime, nullable=False)
    # TPM clock of the last accepted quote: it must never go backwards.
    last_reset_count = sa.Column(sa.BigInteger, nullable=True)
    last_clock = sa.Column(sa.BigInteger, nullable=True)


class Policy(BASE):
    __tablename__ = 'policies'
    __table_args__ = (sa.UniqueConstraint('name', 'version',
                                          name='uniq_policies0name0version'),)

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(255), nullable=False)
    version = sa.Column(sa.Integer, nullable=False)
    document = sa.Column(sa.Text, nullable=False)
    active = sa.Column(sa.Boolean, nullable=False, default=True)
    created_at = sa.Column(sa.DateTime, nullable=False)


class Verdict(BASE):
    __tablename__ = 'verdicts'
    __table_args__ = (sa.Index('verdicts_host_created_idx', 'host_name',
                               'created_at'),)

    id = sa.Column(sa.Integer, primary_key=True)
    host_name = sa.Column(sa.String(255), nullable=False)
    trusted = sa.Column(sa.Boolean, nullable=False)
    summary = sa.Column(sa.Text, nullable=False)
    reasons = sa.Column(sa.Text, nullable=False)       # JSON list
    policy = sa.Column(sa.String(300), nullable=True)
    nonce = sa.Column(sa.String(128), nullable=True)
    pcr_values = sa.Column(sa.Text, nullable=True)     # JSON
    quote_message = sa.Column(sa.LargeBinary, nullable=True)
    quote_signature = sa.Column(sa.LargeBinary, nullable=True)
    created_at = sa.Column(sa.DateTime, nullable=False)


class HostTrust(BASE):
    __tablename__ = 'host_trust'

    host_name = sa.Column(sa.String(255), primary_key=True)
    trusted = sa.Column(sa.Boolean, nullable=False)
    summary = sa.Column(sa.Text, nullable=False)
    verified_at = sa.Column(sa.DateTime, nullable=False)
    verdict_id = sa.Column(sa.Integer, nullable=False)
