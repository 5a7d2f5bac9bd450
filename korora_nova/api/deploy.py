"""The WSGI application of korora-api and its middleware.

From the outside in: a request id (oslo.middleware), errors as
OpenStack's JSON error format with that id (FaultWrapper), Keystone's
auth_token (not for the version document at /), the request context
(roles, project, system scope), the microversion (``OpenStack-API-Version:
korora X.Y``; 406 for one not served), then the routes.
"""

from keystonemiddleware import auth_token
from microversion_parse import middleware as microversion_middleware
from oslo_context import context as oslo_context
from oslo_log import log as logging
from oslo_middleware import request_id
import webob.dec
import webob.exc

from korora_nova.api import microversion
from korora_nova.api import router
from korora_nova.api import util
from korora_nova.api import writes

LOG = logging.getLogger(__name__)
ROOT_PATHS = ('/', '')


class FaultWrapper:
    """Errors in OpenStack's JSON format, whatever the client accepts
    (the API speaks JSON only); an unexpected exception as a 500 of one
    line, its traceback in the log, not to the client."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        environ['HTTP_ACCEPT'] = 'application/json'
        try:
            return self.application(environ, start_response)
        except webob.exc.HTTPException as error:
            error.json_formatter = util.json_error_formatter
            return error(environ, start_response)
        except Exception as error:
            LOG.exception('korora-api: unexpected error')
            failure = util.error(webob.exc.HTTPInternalServerError,
                                 'unexpected error: %s'
                                 % type(error).__name__)
            return failure(environ, start_response)


class AuthToken(auth_token.AuthProtocol):
    """keystonemiddleware's auth_token, but not for the version
    document."""

    def __init__(self, application, conf):
        self._application = application
        super().__init__(application, conf)

    def __call__(self, environ, start_response):
        if environ['PATH_INFO'] in ROOT_PATHS:
            return self._application(environ, start_response)
        return super().__call__(environ, start_response)


class Context:
    """The request's Keystone context (auth_token's headers) at
    environ['korora.context'], and the writer at environ['korora.writer'];
    401 without a user."""

    def __init__(self, application, writer):
        self.application = application
        self.writer = writer

    @webob.dec.wsgify
    def __call__(self, req):
        context = oslo_context.RequestContext.from_environ(
            req.environ,
            request_id=req.environ.get(request_id.ENV_REQUEST_ID))
        if context.user_id is None and req.path_info not in ROOT_PATHS:
            raise util.error(webob.exc.HTTPUnauthorized,
                             'a Keystone token is needed')
        req.environ['korora.context'] = context
        req.environ['korora.writer'] = self.writer
        return req.get_response(self.application)


def keystone(conf):
    """auth_token for the application, configured by [keystone_authtoken]
    of conf."""
    return lambda application: AuthToken(
        application, {'oslo_config_config': conf})


def deploy(conf, auth=None):
    """The application; auth: the authentication middleware (default
    keystonemiddleware's auth_token)."""
    application = router.Router()
    application = microversion_middleware.MicroversionMiddleware(
        application, microversion.SERVICE_TYPE, microversion.VERSIONS,
        json_error_formatter=util.json_error_formatter)
    application = Context(application, writes.Writer())
    application = (auth or keystone(conf))(application)
    application = FaultWrapper(application)
    return request_id.RequestId(application)
