"""/policies: reference policy versions; import (operator-signed),
activate, deactivate."""

import json

from oslo_log import log as logging
import webob.dec
import webob.exc

from korora_nova.api import policy
from korora_nova.api.policies import policies as rules
from korora_nova.api.schemas import policies as schemas
from korora_nova.api import util
from korora_nova.attestation import policy as policy_module
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova import exception

CONF = conf.CONF
LOG = logging.getLogger(__name__)


def _keys():
    """[korora] policy_signing_keys (as the verifier's should be)."""
    try:
        return policy_module.trusted_keys(CONF.korora.policy_signing_keys)
    except exception.SigningKeyError as error:
        LOG.error('%s', error)
        return {}


def _version(row, keys, document=False):
    """A policy version; signed: whether a trusted operator key signed
    exactly it (else signature_problem says why appraisal ignores it)."""
    try:
        policy_module.verified(row.name, row.version, row.document,
                               row.signature, keys)
        problem = None
    except exception.PolicyError as error:
        problem = str(error)
    item = {'name': row.name, 'version': row.version,
            'active': bool(row.active), 'signed': problem is None,
            'signature_problem': problem,
            'imported_at': util.iso(row.created_at)}
    if document:
        item['document'] = json.loads(row.document)
        item['signature'] = row.signature
    return item


def _version_number(req):
    text = util.path_item(req, 'version')
    if not text.isdigit() or not 0 < int(text) <= policy_module.MAX_VERSION:
        raise util.error(webob.exc.HTTPBadRequest,
                         'a policy version is a whole number from 1 to %d, '
                         'not %r' % (policy_module.MAX_VERSION, text[:32]))
    return int(text)


def _row(name, version):
    try:
        return db.policy_get(name, version)
    except exception.PolicyNotFound as error:
        raise util.error(webob.exc.HTTPNotFound, str(error))


@webob.dec.wsgify
def list_policies(req):
    policy.authorize(req, rules.LIST)
    values = util.query(req, schemas.LIST_QUERY)
    limit = util.page_limit(values)
    marker = None
    if 'marker' in values:
        name, _, version = values['marker'].rpartition(':')
        marker = (name, int(version))
    keys = _keys()
    items = [_version(row, keys) for row in
             db.policy_page(limit, marker, values.get('name'))]
    return util.json_response(util.links(
        req, 'policies', items, limit,
        lambda item: '%s:%d' % (item['name'], item['version']), values))


@webob.dec.wsgify
def show_policy(req):
    """A policy: its versions, the newest first."""
    policy.authorize(req, rules.SHOW)
    name = util.path_item(req, 'name')
    rows = db.policy_page(CONF.korora_api.max_limit, name=name)
    if not rows:
        raise util.error(webob.exc.HTTPNotFound, 'no policy %s' % name)
    keys = _keys()
    return util.json_response({'policy': {
        'name': name,
        'versions': [_version(row, keys) for row in reversed(rows)]}})


@webob.dec.wsgify
def show_version(req):
    policy.authorize(req, rules.SHOW)
    row = _row(util.path_item(req, 'name'), _version_number(req))
    return util.json_response({'policy': _version(row, _keys(),
                                                  document=True)})


@webob.dec.wsgify
def import_policy(req):
    policy.authorize(req, rules.IMPORT)
    data = util.body(req, schemas.IMPORT)
    try:
        reference = policy_module.from_json(data['policy'])
    except exception.PolicyError as error:
        raise util.error(webob.exc.HTTPBadRequest, str(error))
    document = reference.to_json()
    req.environ['korora.writer'].write(req, 'import_policy', {
        'document': document, 'signature': data['signature'],
        'active': data.get('active', True)})
    row = _row(reference.name, reference.version)
    location = '%s/policies/%s/versions/%d' % (
        req.application_url, reference.name, reference.version)
    return util.json_response({'policy': _version(row, _keys(),
                                                  document=True)},
                              status=201, headers={'Location': location})


def _set_active(req, rule, operation):
    policy.authorize(req, rule)
    name = util.path_item(req, 'name')
    version = _version_number(req)
    _row(name, version)
    req.environ['korora.writer'].write(req, operation, {
        'name': name, 'version': version})
    return util.json_response({'policy': _version(_row(name, version),
                                                  _keys())})


@webob.dec.wsgify
def activate_version(req):
    return _set_active(req, rules.ACTIVATE, 'activate_policy')


@webob.dec.wsgify
def deactivate_version(req):
    return _set_active(req, rules.DEACTIVATE, 'deactivate_policy')
