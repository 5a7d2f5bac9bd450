"""Client side of the verifier's RPC API.

API version history:

* 1.0 - pcrs_changed (cast), attest_host (call)
"""

import oslo_messaging as messaging

from korora_nova import conf
from korora_nova import rpc

CONF = conf.CONF
VERSION_CAP = '1.0'


class VerifierAPI:

    def __init__(self, transport=None):
        target = messaging.Target(topic=CONF.korora.verifier_topic,
                                  version='1.0')
        self.client = messaging.get_rpc_client(
            transport or rpc.get_transport(), target,
            version_cap=VERSION_CAP)

    def pcrs_changed(self, host):
        """A vTPM manager saw its PCRs change: attest it now (cast).

        The message only triggers an attestation; trust still comes from
        the quote the verifier asks for, so a forged message gains
        nothing.
        """
        self.client.prepare(version='1.0').cast({}, 'pcrs_changed',
                                                host=host)

    def attest_host(self, host, timeout=None):
        cctxt = self.client.prepare(
            version='1.0', timeout=timeout or CONF.korora.attestation_timeout
            * 2)
        return cctxt.call({}, 'attest_host', host=host)
