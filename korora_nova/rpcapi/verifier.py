"""Client side of the verifier's RPC API.

API version history:

* 1.0 - pcrs_changed (cast), attest_host (call)
* 1.1 - the steps of a live migration (migration_*, migrations_in_flight):
  the hooks on compute hosts record nothing themselves
* 1.2 - migration_request carries the destination's TPM-signed request
  (signed_request). A 1.2 verifier refuses a request without one; a 1.1
  verifier is sent none.
* 1.3 - korora-api's writes (admin_enroll_host, admin_remove_host,
  admin_attest_host, admin_set_host_policy, admin_import_policy,
  admin_activate_policy, admin_deactivate_policy), each with the request
  korora-api signed (admin_token). A client pinned below 1.3 refuses
  them.
* 1.4 - the last korora-manage operations for korora-api
  (admin_anchor_audit, admin_quote_host); admin_attest_host names the
  requester in the verdict's audit entry. A client pinned below 1.4
  refuses the new calls.
* 1.5 - admin_quote_host and admin_anchor_audit take the nonce of the
  operator's client and answer with the verifier's signed token for it
  (attestation.operator_answers). A client pinned below 1.5 refuses a
  read with a nonce: the unsigned answer is what it must not trust.
* 1.6 - migration_show: the signed record of one migration, for a host
  that takes part in it, final or not (a source reads why its arrival
  was not verified without writing). A client pinned below 1.6 reads
  it as 1.5 did (hooks.protocol.MigrationProtocol.show).
"""

import os

import oslo_messaging as messaging

from korora_nova.attestation import admin_request
from korora_nova import conf
from korora_nova import exception
from korora_nova import rpc

CONF = conf.CONF

# Release names an operator may give as [upgrade_levels] korora_verifier.
VERSION_ALIASES = {
    '2026.1': '1.0',
    '2026.2': '1.2',
    '2027.1': '1.3',
}
BASE_VERSION = '1.0'
MIGRATION_VERSION = '1.1'
# migration_request's signed_request: a verifier pinned below this is
# sent the request without it.
SIGNED_REQUEST_VERSION = '1.2'
NONCE_SIZE = 32
# korora-api's signed writes.
ADMIN_VERSION = '1.3'
# The writes added later: the version each needs.
ADMIN_OPERATION_VERSIONS = {'anchor_audit': '1.4', 'quote_host': '1.4'}
# A read with the client's nonce, answered with a signed token.
SIGNED_READ_VERSION = '1.5'
# The migration steps added later: the version each needs.
MIGRATION_STEP_VERSIONS = {'migration_show': '1.6'}


class VerifierAPI:

    def __init__(self):
        self.client = rpc.get_client(
            CONF.korora.verifier_topic, BASE_VERSION,
            CONF.upgrade_levels.korora_verifier, VERSION_ALIASES)

    def pcrs_changed(self, host):
        """A vTPM manager saw its PCRs change: attest it now (cast).

        The message only triggers an attestation; trust still comes from
        the quote the verifier asks for, so a forged message gains
        nothing.
        """
        self.client.prepare(version='1.0').cast(rpc.request_context(),
                                                'pcrs_changed', host=host)

    def attest_host(self, host, timeout=None):
        cctxt = self.client.prepare(
            version='1.0', timeout=timeout or CONF.korora.attestation_timeout
            * 2)
        return cctxt.call(rpc.request_context(), 'attest_host', host=host)

    # 1.1: the live-migration steps. Each returns (nonce, token): the
    # caller checks the token against its nonce and the verifier's keys.

    def migration_step(self, method, **arguments):
        """Call the verifier's method with a fresh nonce; (nonce, the
        signed answer)."""
        if not self.client.can_send_version(MIGRATION_VERSION):
            raise exception.ConfigurationError(
                'Korora live migrations need verifier RPC API %s, above '
                '[upgrade_levels] korora_verifier' % MIGRATION_VERSION)
        version = MIGRATION_STEP_VERSIONS.get(method, MIGRATION_VERSION)
        if not self.client.can_send_version(version):
            raise exception.ConfigurationError(
                '%s needs verifier RPC API %s, above [upgrade_levels] '
                'korora_verifier' % (method, version))
        if 'signed_request' in arguments:
            if self.client.can_send_version(SIGNED_REQUEST_VERSION):
                version = SIGNED_REQUEST_VERSION
            else:
                del arguments['signed_request']
        nonce = os.urandom(NONCE_SIZE)
        cctxt = self.client.prepare(
            version=version,
            timeout=CONF.korora.migration_step_timeout)
        try:
            token = cctxt.call(rpc.request_context(), method,
                               nonce=rpc.encode(nonce), **arguments)
        except messaging.MessagingTimeout:
            raise exception.StepNotRun(
                reason='the verifier did not answer %s within %s s'
                % (method, CONF.korora.migration_step_timeout))
        except (messaging.UnsupportedVersion, messaging.RemoteError) as error:
            # A real broker brings the server's UnsupportedVersion back as
            # a RemoteError naming it.
            if isinstance(error, messaging.UnsupportedVersion) or (
                    error.exc_type == 'UnsupportedVersion'):
                raise exception.ConfigurationError(
                    'the verifier does not serve %s at RPC API %s: until it '
                    'is upgraded, set [upgrade_levels] korora_verifier to '
                    'its version' % (method, version))
            # An unexpected failure in the verifier decided nothing.
            raise exception.StepNotRun(
                reason='the verifier failed %s: %s'
                % (method, str(error.value).splitlines()[0]
                   if error.value else error.exc_type))
        except messaging.MessagingException as error:
            raise exception.StepNotRun(
                reason='the verifier cannot be reached: %s' % error)
        return nonce, token

    def can_send_step(self, method):
        """Whether [upgrade_levels] korora_verifier lets method be sent
        (a step added after 1.1: MIGRATION_STEP_VERSIONS)."""
        return self.client.can_send_version(
            MIGRATION_STEP_VERSIONS.get(method, MIGRATION_VERSION))

    # 1.3: korora-api's writes, each signed for its operation and
    # arguments (attestation.admin_request).

    def admin_request(self, signing_key, operation, arguments, requester):
        """Have the verifier carry out operation (admin_<operation> on
        its endpoint) with arguments (every one of them, defaults too:
        the signature binds them all) for requester; its answer.

        ConfigurationError when [upgrade_levels] pins the verifier below
        1.3 (or below the operation's ADMIN_OPERATION_VERSIONS),
        VerifierUnavailable when it does not answer, VerifierRefused
        (error_type: the verifier's exception) when it refuses.
        """
        if not self.client.can_send_version(ADMIN_VERSION):
            raise exception.ConfigurationError(
                'korora-api\'s writes need verifier RPC API %s, above '
                '[upgrade_levels] korora_verifier' % ADMIN_VERSION)
        version = ADMIN_OPERATION_VERSIONS.get(operation, ADMIN_VERSION)
        if 'nonce' in arguments:
            version = SIGNED_READ_VERSION
        if not self.client.can_send_version(version):
            raise exception.ConfigurationError(
                'korora-api\'s %s needs verifier RPC API %s, above '
                '[upgrade_levels] korora_verifier' % (operation, version))
        token = admin_request.sign(signing_key, operation, arguments,
                                   requester,
                                   CONF.korora.api_request_lifetime)
        cctxt = self.client.prepare(
            version=version, timeout=CONF.korora_api.verifier_timeout)
        method = 'admin_' + operation
        try:
            return cctxt.call(rpc.request_context(requester.get(
                'request_id')), method, admin_token=token, **arguments)
        except messaging.MessagingTimeout:
            raise exception.VerifierUnavailable(
                reason='no answer to %s within %s s'
                % (method, CONF.korora_api.verifier_timeout))
        except (messaging.UnsupportedVersion, messaging.RemoteError) as error:
            if isinstance(error, messaging.UnsupportedVersion) or (
                    error.exc_type == 'UnsupportedVersion'):
                raise exception.ConfigurationError(
                    'the verifier does not serve %s at RPC API %s: until it '
                    'is upgraded, it takes no writes from korora-api'
                    % (method, version))
            value = str(error.value or error.exc_type).splitlines()[0]
            raise exception.VerifierRefused(value, error_type=error.exc_type)
        except messaging.MessagingException as error:
            raise exception.VerifierUnavailable(reason=str(error))
