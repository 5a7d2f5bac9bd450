"""Client side of the vTPM manager's RPC API (the verifier's calls).

API version history:

* 1.0 - get_identity, activate_credential, attest
* 1.1 - certify_migration_key, open_duplicate, read_counter,
  advance_counter (the live-migration protocol)
* 2.0 - every call but get_identity carries a verifier-signed challenge
  or authorization; open_duplicate, read_counter and advance_counter
  left the bus for the host's own UNIX socket (local_client). A 1.x
  manager would answer anyone, so 2.0 clients do not fall back to 1.x:
  upgrade the managers first, then the verifier.
"""

import oslo_messaging as messaging

from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova import conf
from korora_nova import exception
from korora_nova import rpc
from korora_nova.tpm import certify

CONF = conf.CONF
MAX_CERTIFICATE = 16 * 1024

# Release names an operator may give as [upgrade_levels]
# korora_vtpm_manager, and the newest version each release understands.
VERSION_ALIASES = {
    '2026.1': '1.1',
    '2026.2': '2.0',
}
BASE_VERSION = '2.0'


class VTPMManagerAPI:
    """Talks to the vTPM manager of one compute host (server = host).

    signer: the verifier's SigningKey; by default [korora]
    verifier_signing_key is read when a challenge is first signed (so on
    a compute host, which has no such key, only get_identity can be
    asked).
    """

    def __init__(self, signer=None):
        self.signer = signer
        self.client = rpc.get_client(
            CONF.korora.manager_topic, BASE_VERSION,
            CONF.upgrade_levels.korora_vtpm_manager, VERSION_ALIASES)

    def _call(self, host, method, timeout=None, version=BASE_VERSION,
              **kwargs):
        if not self.client.can_send_version(version):
            raise exception.ConfigurationError(
                '%s needs vTPM manager RPC API %s, above [upgrade_levels] '
                'korora_vtpm_manager: upgrade the managers, then lift the '
                'cap' % (method, version))
        timeout = timeout or CONF.korora.attestation_timeout
        cctxt = self.client.prepare(server=host, version=version,
                                    timeout=timeout)
        try:
            return cctxt.call(rpc.request_context(), method, **kwargs)
        except messaging.MessagingTimeout:
            raise exception.TPMConnectionError(
                '%s: the vTPM manager did not answer within %s s'
                % (host, timeout))
        except messaging.RemoteError as error:
            raise exception.TPMError(
                '%s: the vTPM manager failed: %s' % (host, error.value))
        except messaging.MessagingException as error:
            raise exception.TPMConnectionError(
                '%s: the vTPM manager cannot be reached: %s'
                % (host, error))

    def _challenge(self, host, claims):
        if self.signer is None:
            try:
                self.signer = results.SigningKey.load(
                    CONF.korora.verifier_signing_key)
            except exception.ConfigurationError as error:
                raise exception.ConfigurationError(
                    'a vTPM manager answers only the verifier\'s signed '
                    'challenges, and this process cannot sign them: %s'
                    % error)
        return self.signer.sign(results.CHALLENGE, host,
                                CONF.korora.result_lifetime, claims)

    def get_identity(self, host):
        """The host's (evidence.Endorsement, AK public key bytes)."""
        reply = _dict(host, self._call(host, 'get_identity'))
        endorsement = evidence.Endorsement(
            str(reply.get('ek_type'))[:32],
            rpc.decode(reply.get('ek_certificate'), 'EK certificate',
                       MAX_CERTIFICATE),
            rpc.decode(reply.get('ek_public'), 'EK public key',
                       evidence.MAX_PUBLIC_SIZE))
        ak_public = rpc.decode(reply.get('ak_public'), 'AK public key',
                               evidence.MAX_PUBLIC_SIZE)
        return endorsement, ak_public

    def activate_credential(self, host, credential_blob, encrypted_secret):
        challenge = self._challenge(
            host, {'korora.purpose': results.ENROLL})
        reply = _dict(host, self._call(
            host, 'activate_credential', challenge=challenge,
            credential_blob=rpc.encode(credential_blob),
            encrypted_secret=rpc.encode(encrypted_secret)))
        return rpc.decode(reply.get('secret'), 'activated secret', 64)

    def attest(self, host, nonce, purpose_label=purpose.ATTEST):
        """A QuoteEvidence whose qualifying data is
        purpose.qualifying_data(purpose_label, nonce)."""
        challenge = self._challenge(host, {
            'eat_nonce': results.nonce_claim(nonce),
            'korora.purpose': purpose.name(purpose_label)})
        reply = _dict(host, self._call(host, 'attest', challenge=challenge))
        return evidence.QuoteEvidence(
            rpc.decode(reply.get('message'), 'quote message',
                       evidence.MAX_ATTEST_SIZE),
            rpc.decode(reply.get('signature'), 'quote signature',
                       evidence.MAX_SIGNATURE_SIZE),
            pcr_values.from_json(reply.get('pcr_values')))

    # The live-migration protocol

    def certify_migration_key(self, host, authorization_token):
        """The host's certify.CertifiedKey for one migration (unchecked:
        the caller appraises it against the host's AK)."""
        reply = _dict(host, self._call(
            host, 'certify_migration_key',
            timeout=CONF.korora.migration_step_timeout,
            authorization_token=authorization_token))
        return certify.CertifiedKey(
            rpc.decode(reply.get('public'), 'certified key',
                       evidence.MAX_PUBLIC_SIZE),
            rpc.decode(reply.get('attestation'), 'key certification',
                       evidence.MAX_ATTEST_SIZE),
            rpc.decode(reply.get('signature'), 'certification signature',
                       evidence.MAX_SIGNATURE_SIZE),
            rpc.decode(reply.get('unique'), 'key unique', 64))


def _dict(host, reply):
    if not isinstance(reply, dict):
        raise exception.EvidenceError(
            '%s: the vTPM manager sent a malformed reply' % host)
    return reply
