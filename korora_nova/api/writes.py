"""Every write of korora-api: a request signed with [korora_api]
signing_key, sent to korora-verifier (RPC API 1.3, 1.4 for the
audit anchor and a host's quote, 1.5 for those two with the client's
nonce), which carries it out
after checking the signature. The verifier's refusals become HTTP
errors with its one-line reason."""

from oslo_log import log as logging
import webob.exc

from korora_nova.api import util
from korora_nova.attestation import admin_request
from korora_nova import conf
from korora_nova import exception
from korora_nova.rpcapi import verifier as verifier_rpcapi

CONF = conf.CONF
LOG = logging.getLogger(__name__)

# The verifier's exceptions (RemoteError's exc_type) and what a client
# is told; anything else is a 500 with the verifier's reason.
_STATUS = {
    'HostNotFound': webob.exc.HTTPNotFound,
    'PolicyNotFound': webob.exc.HTTPNotFound,
    'HostExists': webob.exc.HTTPConflict,
    'PolicyExists': webob.exc.HTTPConflict,
    'EnrollmentError': webob.exc.HTTPConflict,
    'EndorsementError': webob.exc.HTTPBadRequest,
    'PolicyError': webob.exc.HTTPBadRequest,
    'PolicySignatureError': webob.exc.HTTPBadRequest,
    'UsageError': webob.exc.HTTPBadRequest,
    # A log that fails verification (or is empty) is not anchored; a
    # quote that does not verify is not given out.
    'AuditError': webob.exc.HTTPConflict,
    'EvidenceError': webob.exc.HTTPConflict,
    # The verifier does not trust this korora-api's key, or a TPM or a
    # vTPM manager did not answer it: try again once that is fixed.
    'NotAuthorized': webob.exc.HTTPServiceUnavailable,
    'TPMError': webob.exc.HTTPServiceUnavailable,
    'TPMConnectionError': webob.exc.HTTPServiceUnavailable,
    'MessagingTimeout': webob.exc.HTTPServiceUnavailable,
    'DatabaseError': webob.exc.HTTPServiceUnavailable,
}


class Writer:
    """Sends the writes; one per application."""

    def __init__(self):
        self._api = None
        self._key = None

    def _client(self):
        if self._api is None:
            self._api = verifier_rpcapi.VerifierAPI()
        if self._key is None:
            try:
                self._key = admin_request.load_signing_key(
                    CONF.korora_api.signing_key)
            except exception.ConfigurationError as error:
                LOG.error('korora-api cannot sign writes: %s', error)
                raise util.error(
                    webob.exc.HTTPServiceUnavailable,
                    'korora-api cannot sign writes ([korora_api] '
                    'signing_key): %s' % error)
        return self._api, self._key

    def write(self, req, operation, arguments):
        """The verifier's answer to operation(arguments), asked for the
        request's Keystone user and project."""
        api, key = self._client()
        context = req.environ['korora.context']
        requester = {
            'user_id': context.user_id,
            'project_id': context.project_id,
            'system_scope': context.system_scope,
            'request_id': context.request_id}
        try:
            return api.admin_request(key, operation, arguments, requester)
        except exception.VerifierRefused as error:
            kind = _STATUS.get(error.error_type,
                               webob.exc.HTTPInternalServerError)
            LOG.info('%s refused by korora-verifier (%s): %s', operation,
                     error.error_type, error)
            raise util.error(kind, str(error))
        except (exception.VerifierUnavailable,
                exception.ConfigurationError) as error:
            LOG.error('%s: %s', operation, error)
            raise util.error(webob.exc.HTTPServiceUnavailable, str(error))
