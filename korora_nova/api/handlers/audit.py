"""/audit: the hash-chained audit log; verify it, its head, its TPM
anchors; anchor it."""

import dataclasses

import webob.dec

from korora_nova.api.handlers import hosts
from korora_nova.api import microversion
from korora_nova.api import policy
from korora_nova.api.policies import audit as rules
from korora_nova.api.schemas import audit as schemas
from korora_nova.api import util
from korora_nova.db import api as db
from korora_nova.migration import audit


@webob.dec.wsgify
def verify(req):
    """What "korora-manage audit verify" reports; head: a SEQ:HASH kept
    outside the database that the log must still hold."""
    policy.authorize(req, rules.VERIFY)
    values = util.query(req, schemas.VERIFY_QUERY)
    expected = None
    if 'head' in values:
        seq, _, entry_hash = values['head'].partition(':')
        expected = (int(seq), entry_hash.lower())
    report = audit.verify(expected)
    return util.json_response({'audit': {
        'ok': report.ok, 'entries': report.entries,
        'first_seq': report.first_seq, 'last_seq': report.last_seq,
        'head_hash': report.head_hash, 'anchors': report.anchors,
        'last_anchor_seq': report.last_anchor_seq,
        'last_anchor_host': report.last_anchor_host,
        'unanchored': report.unanchored, 'rows': report.rows,
        'problems': [dataclasses.asdict(problem)
                     for problem in report.problems],
        'warnings': [str(warning) for warning in report.warnings],
        'summary': report.summary()}})


@webob.dec.wsgify
def head(req):
    policy.authorize(req, rules.HEAD)
    util.query(req, {'type': 'object', 'additionalProperties': False})
    entry = db.audit_head()
    if entry is None:
        return util.json_response({'head': None})
    return util.json_response({'head': {
        'seq': entry.seq, 'entry_hash': entry.entry_hash,
        'created_at': util.iso(entry.created_at),
        'anchored': db.audit_anchor_get(entry.seq) is not None}})


@webob.dec.wsgify
def create_anchor(req):
    """Have a host's TPM sign the head (microversion 1.1), as
    "korora-manage audit anchor" does; the verifier appends an entry
    naming the requester, and that entry is what is signed. From 1.2
    the body has the client's nonce and the answer the verifier's token
    for it."""
    policy.authorize(req, rules.ANCHOR)
    if microversion.at_least(req.environ, microversion.SIGNED_READS):
        data = util.body(req, schemas.SIGNED_ANCHOR)
    else:
        data = util.body(req, schemas.ANCHOR)
    hosts.require_host(data['host'])
    anchor = req.environ['korora.writer'].write(req, 'anchor_audit', data)
    return util.json_response({'anchor': anchor}, status=201)


@webob.dec.wsgify
def anchors(req):
    policy.authorize(req, rules.ANCHORS)
    values = util.query(req, schemas.ANCHORS_QUERY)
    limit = util.page_limit(values)
    marker = int(values['marker']) if 'marker' in values else None
    items = [{'seq': row.seq, 'host': row.host,
              'created_at': util.iso(row.created_at)}
             for row in db.audit_anchor_page(limit, marker)]
    return util.json_response(util.links(
        req, 'anchors', items, limit, lambda item: str(item['seq']),
        values))
