"""/hosts: enrolled compute hosts, their trust; enroll, remove, attest
now, set the policy, quote now."""

import json

import webob.dec
import webob.exc

from korora_nova.api import microversion
from korora_nova.api import policy
from korora_nova.api.policies import hosts as rules
from korora_nova.api.schemas import hosts as schemas
from korora_nova.api import util
from korora_nova.attestation import freshness
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova import exception

CONF = conf.CONF
RECENT_VERDICTS = 10


def _cutoff():
    return freshness.cutoff(db.utcnow(), CONF.korora.trust_ttl)


def _trust(entry, cutoff, now):
    """A host's trust: its state in a word, when it was judged, how many
    seconds ago, the verdict's summary."""
    trust = {'state': freshness.state(entry, cutoff), 'verified_at': None,
             'age_seconds': None, 'summary': None}
    if entry is not None:
        trusted, summary, verified_at = entry
        trust.update(verified_at=util.iso(verified_at), summary=summary,
                     age_seconds=max(0, int(
                         (now - verified_at).total_seconds())))
    return trust


def _host(row, entry, cutoff, now):
    return {'name': row.name, 'policy': row.policy_name,
            'ek_type': row.ek_type,
            'ek_certificate_sha256': row.ek_certificate_sha256,
            'ak_name': row.ak_name,
            'trust_on_first_use': bool(row.trust_on_first_use),
            'enrolled_at': util.iso(row.enrolled_at),
            'trust': _trust(entry, cutoff, now)}


def _verdict(row):
    return {'created_at': util.iso(row.created_at),
            'trusted': bool(row.trusted), 'policy': row.policy,
            'summary': row.summary, 'reasons': json.loads(row.reasons)}


def host_detail(name, verdicts=RECENT_VERDICTS):
    """A host with its current verdict (reasons, age) and its recent
    verdicts; 404 if it is not enrolled."""
    try:
        row = db.host_get(name)
    except exception.HostNotFound as error:
        raise util.error(webob.exc.HTTPNotFound, str(error))
    now = db.utcnow()
    current = db.host_current_verdict(name)
    entry = None
    if current is not None:
        trust, _ = current
        entry = (trust.trusted, trust.summary, trust.verified_at)
    detail = _host(row, entry, _cutoff(), now)
    detail['trust']['reasons'] = (
        json.loads(current[1].reasons) if current and current[1] else [])
    detail['verdicts'] = [_verdict(v) for v in
                          db.verdicts_for_host(name, verdicts)]
    return detail


@webob.dec.wsgify
def list_hosts(req):
    policy.authorize(req, rules.LIST)
    values = util.query(req, schemas.LIST_QUERY)
    limit = util.page_limit(values)
    rows = db.host_page(limit, values.get('marker'))
    trust = db.host_trust_all()
    cutoff, now = _cutoff(), db.utcnow()
    items = [_host(row, trust.get(row.name), cutoff, now) for row in rows]
    return util.json_response(util.links(
        req, 'hosts', items, limit, lambda item: item['name'], values))


@webob.dec.wsgify
def show_host(req):
    policy.authorize(req, rules.SHOW)
    values = util.query(req, schemas.SHOW_QUERY)
    return util.json_response({'host': host_detail(
        util.path_item(req, 'host'),
        int(values.get('verdicts', RECENT_VERDICTS)))})


def _require_policy(name):
    """400 when policy name does not exist (nothing is sent)."""
    try:
        db.policy_get(name)
    except exception.PolicyNotFound as error:
        raise util.error(webob.exc.HTTPBadRequest, str(error))


def require_host(name):
    """404 when host name is not enrolled (nothing is sent)."""
    try:
        db.host_get(name)
    except exception.HostNotFound as error:
        raise util.error(webob.exc.HTTPNotFound, str(error))


@webob.dec.wsgify
def enroll_host(req):
    policy.authorize(req, rules.ENROLL)
    data = util.body(req, schemas.ENROLL)
    if data.get('policy') is not None:
        _require_policy(data['policy'])
    req.environ['korora.writer'].write(req, 'enroll_host', {
        'host': data['host'], 'policy': data.get('policy'),
        'trust_on_first_use': data.get('trust_on_first_use', False)})
    location = '%s/hosts/%s' % (req.application_url, data['host'])
    return util.json_response({'host': host_detail(data['host'])},
                              status=201, headers={'Location': location})


@webob.dec.wsgify
def delete_host(req):
    policy.authorize(req, rules.DELETE)
    name = util.path_item(req, 'host')
    require_host(name)
    req.environ['korora.writer'].write(req, 'remove_host', {'host': name})
    return webob.Response(status=204)


@webob.dec.wsgify
def attest_host(req):
    policy.authorize(req, rules.ATTEST)
    name = util.path_item(req, 'host')
    require_host(name)
    verdict = req.environ['korora.writer'].write(req, 'attest_host',
                                                 {'host': name})
    return util.json_response({'verdict': verdict,
                               'host': host_detail(name)})


@webob.dec.wsgify
def quote_host(req):
    """The PCR values the host's TPM quotes now, verified by the
    verifier against its enrolled AK and a fresh nonce (microversion
    1.1): the client builds and signs a policy of them with the
    operator's key, which never reaches korora. From 1.2 the body has
    the client's nonce and the answer the verifier's token for it, the
    only part the client believes."""
    policy.authorize(req, rules.QUOTE)
    name = util.path_item(req, 'host')
    arguments = {'host': name}
    if microversion.at_least(req.environ, microversion.SIGNED_READS):
        arguments['nonce'] = util.body(req, schemas.SIGNED_QUOTE)['nonce']
    elif req.content_length:
        util.body(req, schemas.QUOTE)
    require_host(name)
    quote = req.environ['korora.writer'].write(req, 'quote_host', arguments)
    return util.json_response({'quote': quote})


@webob.dec.wsgify
def set_host_policy(req):
    policy.authorize(req, rules.SET_POLICY)
    name = util.path_item(req, 'host')
    data = util.body(req, schemas.SET_POLICY)
    require_host(name)
    _require_policy(data['policy'])
    req.environ['korora.writer'].write(req, 'set_host_policy', {
        'host': name, 'policy': data['policy']})
    return util.json_response({'host': host_detail(name)})
