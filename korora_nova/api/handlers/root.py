"""The version document at /: no token needed."""

import webob.dec

from korora_nova.api import microversion
from korora_nova.api import util


def version_document(req):
    return {'versions': [{
        'id': 'v%s' % microversion.max_version_string(),
        'status': 'CURRENT',
        'min_version': microversion.min_version_string(),
        'max_version': microversion.max_version_string(),
        'links': [{'rel': 'self', 'href': req.application_url + '/'}],
    }]}


@webob.dec.wsgify
def home(req):
    return util.json_response(version_document(req))
