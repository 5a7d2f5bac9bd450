"""The operator's writes on hosts and policies, one function each.

korora-manage calls them directly (it runs on the control plane, with
the verifier's database). korora-api reaches them only through the
verifier's RPC endpoint (manager.Verifier, RPC API 1.3), with a request
it signed: AdminRequests.accept checks it first, and the Keystone user
and project that asked go into the audit log entry (requester).
"""

import datetime
import json

from oslo_log import log as logging

from korora_nova.attestation import admin_request
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import results
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova import exception
from korora_nova.verifier import enrollment

CONF = conf.CONF
LOG = logging.getLogger(__name__)


def enroll(manager_api, host, policy_name=None, trust_on_first_use=False,
           requester=None):
    """Enroll host (its policy must exist); returns the host row."""
    if policy_name:
        db.policy_get(policy_name)
    return enrollment.enroll(manager_api, host, policy_name,
                             trust_on_first_use, requester)


def remove(host, requester=None):
    """Forget an enrolled host and its current trust."""
    db.host_delete(host, requester)


def set_policy(host, policy_name, requester=None):
    """Judge host by policy_name (which must exist) from now on."""
    db.policy_get(policy_name)
    db.host_set_policy(host, policy_name, requester)


def import_policy(reference, signature, active=True, requester=None):
    """Store a policy version with its operator's signature."""
    return db.policy_create(reference, active=active, signature=signature,
                            requester=requester)


def set_active(name, version, active, requester=None):
    db.policy_set_active(name, version, active, requester)


def signed_policy(document, signature):
    """The ReferencePolicy of document (its JSON, as a dict) if a key of
    [korora] policy_signing_keys signed exactly it; PolicyError or
    PolicySignatureError with the reason otherwise."""
    reference = policy_module.from_json(document)
    keys = policy_module.trusted_keys(CONF.korora.policy_signing_keys)
    policy_module.verified(reference.name, reference.version,
                           json.dumps(reference.to_json(), sort_keys=True),
                           signature, keys)
    return reference


class AdminRequests:
    """The verifier's gate for korora-api's writes."""

    def accept(self, token, operation, arguments):
        """The requester of a request korora-api signed for exactly
        operation(arguments), not expired and never carried out before;
        NotAuthorized with the reason otherwise."""
        checker = admin_request.Checker.load(CONF.korora.api_public_keys)
        if checker is None:
            raise exception.NotAuthorized(
                reason='[korora] api_public_keys is empty: this verifier '
                       'obeys no admin request from the bus')
        try:
            claims = checker.check(token, operation, arguments)
        except exception.NotAuthorized as error:
            LOG.warning('admin request %s refused: %s', operation, error)
            raise
        expires_at = datetime.datetime.fromtimestamp(
            claims['exp'] + results.LEEWAY, datetime.timezone.utc).replace(
            tzinfo=None)
        try:
            db.admin_request_claim(claims['jti'], operation, expires_at)
        except exception.NotAuthorized as error:
            LOG.warning('admin request %s refused: %s', operation, error)
            raise
        requester = claims[admin_request.REQUESTER]
        LOG.info('admin request %s %s from user %s (project %s)', operation,
                 claims['jti'], requester.get('user_id'),
                 requester.get('project_id') or 'system scope')
        return requester
