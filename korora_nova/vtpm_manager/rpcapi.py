"""Client side of the vTPM manager's RPC API.

API version history:

* 1.0 - get_identity, activate_credential, attest
"""

import oslo_messaging as messaging

from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova import conf
from korora_nova import exception
from korora_nova import rpc

CONF = conf.CONF
VERSION_CAP = '1.0'
MAX_CERTIFICATE = 16 * 1024


class VTPMManagerAPI:
    """Talks to the vTPM manager of one compute host (server = host)."""

    def __init__(self, transport=None):
        target = messaging.Target(topic=CONF.korora.manager_topic,
                                  version='1.0')
        self.client = messaging.get_rpc_client(
            transport or rpc.get_transport(), target,
            version_cap=VERSION_CAP)

    def _call(self, host, method, timeout=None, **kwargs):
        cctxt = self.client.prepare(
            server=host, version='1.0',
            timeout=timeout or CONF.korora.attestation_timeout)
        try:
            return cctxt.call({}, method, **kwargs)
        except messaging.MessagingTimeout:
            raise exception.TPMConnectionError(
                '%s: the vTPM manager did not answer within %s s'
                % (host, timeout or CONF.korora.attestation_timeout))
        except messaging.RemoteError as error:
            raise exception.TPMError(
                '%s: the vTPM manager failed: %s' % (host, error.value))
        except messaging.MessagingException as error:
            raise exception.TPMConnectionError(
                '%s: the vTPM manager cannot be reached: %s'
                % (host, error))

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
        reply = _dict(host, self._call(
            host, 'activate_credential',
            credential_blob=rpc.encode(credential_blob),
            encrypted_secret=rpc.encode(encrypted_secret)))
        return rpc.decode(reply.get('secret'), 'activated secret', 64)

    def attest(self, host, nonce):
        """A QuoteEvidence over the verifier's nonce."""
        reply = _dict(host, self._call(host, 'attest',
                                       nonce=rpc.encode(nonce)))
        return evidence.QuoteEvidence(
            rpc.decode(reply.get('message'), 'quote message',
                       evidence.MAX_ATTEST_SIZE),
            rpc.decode(reply.get('signature'), 'quote signature',
                       evidence.MAX_SIGNATURE_SIZE),
            pcr_values.from_json(reply.get('pcr_values')))


def _dict(host, reply):
    if not isinstance(reply, dict):
        raise exception.EvidenceError(
            '%s: the vTPM manager sent a malformed reply' % host)
    return reply
