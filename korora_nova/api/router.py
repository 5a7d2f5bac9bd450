"""URLs to handlers (Routes), with 405 and an Allow header for a known
URL asked with another method; as Placement's handler."""

import routes
import webob.exc

from korora_nova.api.handlers import audit
from korora_nova.api.handlers import hosts
from korora_nova.api.handlers import instances
from korora_nova.api.handlers import migrations
from korora_nova.api.handlers import policies
from korora_nova.api.handlers import root
from korora_nova.api import microversion
from korora_nova.api import util

VERSION = '/policies/{name}/versions/{version}'
# A method added in a later microversion: path -> {method: version}.
# Below it the request is answered as if the method were not there
# (405 naming the others, or 404 when there is none).
SINCE = {
    '/audit/anchors': {'POST': '1.1'},
    '/hosts/{host}/quote': {'POST': '1.1'},
}
ROUTES = {
    '/': {'GET': root.home},
    '': {'GET': root.home},
    '/hosts': {'GET': hosts.list_hosts, 'POST': hosts.enroll_host},
    '/hosts/{host}': {'GET': hosts.show_host, 'DELETE': hosts.delete_host},
    '/hosts/{host}/attest': {'POST': hosts.attest_host},
    '/hosts/{host}/policy': {'PUT': hosts.set_host_policy},
    '/hosts/{host}/quote': {'POST': hosts.quote_host},
    '/policies': {'GET': policies.list_policies,
                  'POST': policies.import_policy},
    '/policies/{name}': {'GET': policies.show_policy},
    VERSION: {'GET': policies.show_version},
    VERSION + '/activate': {'POST': policies.activate_version},
    VERSION + '/deactivate': {'POST': policies.deactivate_version},
    '/migrations': {'GET': migrations.list_migrations},
    '/migrations/{uuid}': {'GET': migrations.show_migration},
    '/audit/verify': {'GET': audit.verify},
    '/audit/head': {'GET': audit.head},
    '/audit/anchors': {'GET': audit.anchors,
                       'POST': audit.create_anchor},
    '/instances/{uuid}/trust': {'GET': instances.trust},
}


def _allowed(path, methods, environ):
    """The methods of path (methods: comma-separated; Routes keeps
    strings) at the request's microversion."""
    since = SINCE.get(path, {})
    return [method for method in methods.split(',')
            if method not in since or microversion.at_least(
                environ, since[method])]


def _method_not_allowed(environ, start_response):
    match = environ['wsgiorg.routing_args'][1]
    allowed = ', '.join(_allowed(match['_path'], match['_methods'], environ))
    if not allowed:
        raise util.error(webob.exc.HTTPNotFound,
                         'no resource at %s' % environ['PATH_INFO'])
    response = util.error(
        webob.exc.HTTPMethodNotAllowed,
        'the method %s is not allowed here (allowed: %s)'
        % (environ['REQUEST_METHOD'], allowed), headers={'Allow': allowed})
    return response(environ, start_response)


def _mapper():
    mapper = routes.Mapper()
    for path, methods in ROUTES.items():
        for method, handler in methods.items():
            mapper.connect(path, action=handler,
                           conditions={'method': [method]}, _path=path,
                           _methods=','.join(sorted(methods)))
        mapper.connect(path, action=_method_not_allowed, _path=path,
                       _methods=','.join(sorted(methods)))
    return mapper


class Router:
    """The application below the middleware."""

    def __init__(self):
        self._mapper = _mapper()

    def __call__(self, environ, start_response):
        match = self._mapper.match(environ=environ)
        if match is None:
            raise util.error(webob.exc.HTTPNotFound,
                             'no resource at %s' % environ['PATH_INFO'])
        handler = match.pop('action')
        environ['wsgiorg.routing_args'] = ((), match)
        if match['_path'] in SINCE and environ['REQUEST_METHOD'] not in (
                _allowed(match['_path'], match['_methods'], environ)):
            handler = _method_not_allowed
        return handler(environ, start_response)
