"""SQLAlchemy models of the verifier's database.

``verdicts`` is the audit history (append-only); ``host_trust`` holds one
row per host with its current verdict, which is all the scheduler filter
reads.

Rows that decide trust (hosts, policies, verdicts, host_trust) each name
their audit_key() and the audit_content() that decides trust: the audit
log records a digest of that content whenever the verifier writes the
row, and "korora-manage audit verify" compares it with the row.
"""

import hashlib

from oslo_db.sqlalchemy import models
from sqlalchemy.dialects import mysql
from sqlalchemy import orm
import sqlalchemy as sa

# Names compare byte for byte on every backend: MariaDB's default
# collation would make "COMPUTE-1" and "compute-1 " the same host.
Name = sa.String(255).with_variant(
    mysql.VARCHAR(255, collation='utf8mb4_bin'), 'mysql', 'mariadb')
# Up to 1 MiB (policy files): MariaDB's TEXT stops at 64 KiB.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')

BASE = orm.declarative_base(cls=models.ModelBase)


def _sha256(data):
    return hashlib.sha256(data or b'').hexdigest()


def _seconds(value):
    return value.isoformat(timespec='seconds') if value else None


class Host(BASE):
    __tablename__ = 'hosts'
    __table_args__ = (sa.UniqueConstraint('name', name='uniq_hosts0name'),)

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(Name, nullable=False)
    ek_type = sa.Column(sa.String(32), nullable=False)
    ek_certificate = sa.Column(sa.LargeBinary, nullable=False)
    ek_certificate_sha256 = sa.Column(sa.String(64), nullable=False)
    ek_public = sa.Column(sa.LargeBinary, nullable=False)
    ak_public = sa.Column(sa.LargeBinary, nullable=False)
    ak_name = sa.Column(sa.String(140), nullable=False)
    trust_on_first_use = sa.Column(sa.Boolean, nullable=False,
                                   default=False)
    policy_name = sa.Column(Name, nullable=True)
    enrolled_at = sa.Column(sa.DateTime, nullable=False)
    next_attestation_at = sa.Column(sa.DateTime, nullable=False)
    # TPM clock of the last accepted quote: it must never go backwards.
    last_reset_count = sa.Column(sa.BigInteger, nullable=True)
    last_clock = sa.Column(sa.BigInteger, nullable=True)

    def audit_key(self):
        return ('hosts', self.name)

    def audit_content(self):
        """The identity and policy that decide the host's trust (not its
        schedule or clock floor, which every attestation moves)."""
        return {'name': self.name, 'ek_type': self.ek_type,
                'ek_certificate': _sha256(self.ek_certificate),
                'ek_public': _sha256(self.ek_public),
                'ak_public': _sha256(self.ak_public),
                'ak_name': self.ak_name,
                'trust_on_first_use': bool(self.trust_on_first_use),
                'policy_name': self.policy_name}


class Policy(BASE):
    __tablename__ = 'policies'
    __table_args__ = (sa.UniqueConstraint('name', 'version',
                                          name='uniq_policies0name0version'),)

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(Name, nullable=False)
    version = sa.Column(sa.Integer, nullable=False)
    document = sa.Column(LongText, nullable=False)
    active = sa.Column(sa.Boolean, nullable=False, default=True)
    created_at = sa.Column(sa.DateTime, nullable=False)
    # The operator's compact JWS (ES256) over the canonical document.
    signature = sa.Column(LongText, nullable=True)

    def audit_key(self):
        return ('policies', self.name, self.version)

    def audit_content(self):
        return {'name': self.name, 'version': self.version,
                'document': _sha256(self.document.encode('utf-8')),
                'signature': _sha256((self.signature or '').encode(
                    'ascii', 'replace')),
                'active': bool(self.active)}


class Verdict(BASE):
    __tablename__ = 'verdicts'
    __table_args__ = (sa.Index('verdicts_host_created_idx', 'host_name',
                               'created_at'),)

    id = sa.Column(sa.Integer, primary_key=True)
    host_name = sa.Column(Name, nullable=False)
    trusted = sa.Column(sa.Boolean, nullable=False)
    summary = sa.Column(sa.Text, nullable=False)
    reasons = sa.Column(sa.Text, nullable=False)       # JSON list
    policy = sa.Column(sa.String(300), nullable=True)
    nonce = sa.Column(sa.String(128), nullable=True)
    pcr_values = sa.Column(sa.Text, nullable=True)     # JSON
    quote_message = sa.Column(sa.LargeBinary, nullable=True)
    quote_signature = sa.Column(sa.LargeBinary, nullable=True)
    created_at = sa.Column(sa.DateTime, nullable=False)

    def audit_key(self):
        return ('verdicts', self.id)

    def audit_content(self):
        return {'id': self.id, 'host_name': self.host_name,
                'trusted': bool(self.trusted), 'summary': self.summary,
                'reasons': self.reasons, 'policy': self.policy,
                'nonce': self.nonce, 'pcr_values': self.pcr_values,
                'quote_message': _sha256(self.quote_message),
                'quote_signature': _sha256(self.quote_signature),
                'created_at': _seconds(self.created_at)}


class HostTrust(BASE):
    __tablename__ = 'host_trust'

    host_name = sa.Column(Name, primary_key=True)
    trusted = sa.Column(sa.Boolean, nullable=False)
    summary = sa.Column(sa.Text, nullable=False)
    verified_at = sa.Column(sa.DateTime, nullable=False)
    verdict_id = sa.Column(sa.Integer, nullable=False)

    def audit_key(self):
        return ('host_trust', self.host_name)

    def audit_content(self):
        """What the scheduler filter reads (db.api, host_trust_*)."""
        return {'host_name': self.host_name,
                'trusted': bool(self.trusted), 'summary': self.summary,
                'verified_at': _seconds(self.verified_at),
                'verdict_id': self.verdict_id}


class Migration(BASE):
    """A live migration and its current state (korora_nova.migration)."""

    __tablename__ = 'migrations'
    __table_args__ = (
        sa.Index('migrations_state_idx', 'state'),
        sa.Index('migrations_instance_idx', 'instance_uuid'),
    )

    uuid = sa.Column(sa.String(36), primary_key=True)
    instance_uuid = sa.Column(sa.String(36), nullable=False)
    source_host = sa.Column(sa.String(255), nullable=False)
    dest_host = sa.Column(sa.String(255), nullable=False)
    state = sa.Column(sa.String(32), nullable=False)
    reason = sa.Column(sa.Text, nullable=True)
    created_at = sa.Column(sa.DateTime, nullable=False)
    updated_at = sa.Column(sa.DateTime, nullable=False)
    # The source's signed integrity manifest (hooks.manifest, JSON) and
    # the value of its monotonic counter the manifest is bound to.
    manifest = sa.Column(LongText, nullable=True)
    source_counter = sa.Column(sa.BigInteger, nullable=True)


class AuditEntry(BASE):
    """One entry of the hash-chained, append-only audit log.

    seq is assigned by the writer (the head's seq + 1), not by the
    database: the entry's hash covers it.
    """

    __tablename__ = 'audit_log'
    __table_args__ = (
        sa.Index('audit_log_migration_idx', 'migration_uuid'),
    )

    seq = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    migration_uuid = sa.Column(sa.String(36), nullable=True)
    host = sa.Column(sa.String(255), nullable=False)
    step = sa.Column(sa.String(64), nullable=False)
    from_state = sa.Column(sa.String(32), nullable=True)
    to_state = sa.Column(sa.String(32), nullable=True)
    details = sa.Column(sa.Text, nullable=False)       # canonical JSON
    created_at = sa.Column(sa.DateTime, nullable=False)
    prev_hash = sa.Column(sa.String(64), nullable=False)
    entry_hash = sa.Column(sa.String(64), nullable=False)


class AuditAnchor(BASE):
    """A host TPM's quote over the entry hash of audit_log seq."""

    __tablename__ = 'audit_anchors'

    seq = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    host = sa.Column(sa.String(255), nullable=False)
    quote_message = sa.Column(sa.LargeBinary, nullable=False)
    quote_signature = sa.Column(sa.LargeBinary, nullable=False)
    pcr_values = sa.Column(sa.Text, nullable=False)    # JSON
    created_at = sa.Column(sa.DateTime, nullable=False)


class AuditChainLock(BASE):
    """The audit log's one lock row (id 1).

    Every transaction that appends an entry first updates this row, so
    appends run one after the other: each reads the head its entry
    follows only once no other append can still commit (see
    korora_nova.db.api._appending).
    """

    __tablename__ = 'audit_chain_lock'

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)


class AdminRequest(BASE):
    """The id of an admin request korora-api signed and the verifier
    carried out, kept until the request expires: a replay is refused
    (korora_nova.attestation.admin_request)."""

    __tablename__ = 'admin_requests'

    jti = sa.Column(sa.String(64), primary_key=True)
    operation = sa.Column(sa.String(64), nullable=False)
    expires_at = sa.Column(sa.DateTime, nullable=False)
