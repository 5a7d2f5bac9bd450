"""Client side of the vTPM manager's RPC API.

API version history:

* 1.0 - get_identity, activate_credential, attest
* 1.1 - certify_migration_key, open_duplicate, read_counter,
  advance_counter (the live-migration protocol)
"""

import oslo_messaging as messaging

from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import purpose
from korora_nova import conf
from korora_nova import exception
from korora_nova import rpc
from korora_nova.tpm import certify
from korora_nova.vtpm_manager import local_channel

CONF = conf.CONF
VERSION_CAP = '1.1'
MAX_CERTIFICATE = 16 * 1024


class VTPMManagerAPI:
    """Talks to the vTPM manager of one compute host (server = host)."""

    def __init__(self, transport=None):
        target = messaging.Target(topic=CONF.korora.manager_topic,
                                  version='1.0')
        self.client = messaging.get_rpc_client(
            transport or rpc.get_transport(), target,
            version_cap=VERSION_CAP)

    def _call(self, host, method, timeout=None, version='1.0', **kwargs):
        cctxt = self.client.prepare(
            server=host, version=version,
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

    def attest(self, host, nonce, purpose_label=purpose.ATTEST):
        """A QuoteEvidence whose extraData is
        purpose.qualifying_data(purpose_label, nonce)."""
        reply = _dict(host, self._call(host, 'attest',
                                       nonce=rpc.encode(nonce),
                                       purpose=purpose.name(purpose_label)))
        return evidence.QuoteEvidence(
            rpc.decode(reply.get('message'), 'quote message',
                       evidence.MAX_ATTEST_SIZE),
            rpc.decode(reply.get('signature'), 'quote signature',
                       evidence.MAX_SIGNATURE_SIZE),
            pcr_values.from_json(reply.get('pcr_values')))

    # 1.1: the live-migration protocol

    def certify_migration_key(self, host, nonce):
        """The host's certify.CertifiedKey for one migration (unchecked:
        the caller appraises it against the host's AK)."""
        reply = _dict(host, self._call(
            host, 'certify_migration_key', version='1.1',
            timeout=CONF.korora.migration_step_timeout,
            nonce=rpc.encode(nonce)))
        return certify.CertifiedKey(
            rpc.decode(reply.get('public'), 'certified key',
                       evidence.MAX_PUBLIC_SIZE),
            rpc.decode(reply.get('attestation'), 'key certification',
                       evidence.MAX_ATTEST_SIZE),
            rpc.decode(reply.get('signature'), 'certification signature',
                       evidence.MAX_SIGNATURE_SIZE),
            rpc.decode(reply.get('unique'), 'key unique', 64))

    def open_duplicate(self, host, unique, duplicated, binding):
        """The duplicated secret, as local_channel.seal() of host."""
        reply = _dict(host, self._call(
            host, 'open_duplicate', version='1.1',
            timeout=CONF.korora.migration_step_timeout,
            unique=rpc.encode(unique),
            public=rpc.encode(duplicated.public),
            duplicate=rpc.encode(duplicated.duplicate),
            seed=rpc.encode(duplicated.seed),
            binding=rpc.encode(binding)))
        return rpc.decode(reply.get('sealed'), 'sealed secret',
                          local_channel.MAX_PLAINTEXT + 64)

    def read_counter(self, host):
        return _counter(host, self._call(
            host, 'read_counter', version='1.1',
            timeout=CONF.korora.migration_step_timeout))

    def advance_counter(self, host):
        return _counter(host, self._call(
            host, 'advance_counter', version='1.1',
            timeout=CONF.korora.migration_step_timeout))


def _counter(host, reply):
    value = _dict(host, reply).get('value')
    if not isinstance(value, int) or isinstance(value, bool) or not (
            0 <= value < 2 ** 64):
        raise exception.EvidenceError(
            '%s: the vTPM manager sent a malformed counter value' % host)
    return value


def _dict(host, reply):
    if not isinstance(reply, dict):
        raise exception.EvidenceError(
            '%s: the vTPM manager sent a malformed reply' % host)
    return reply
