"""Payloads the verifier takes from the message bus: the nonce of every
migration call (verifier.manager._nonce), and the vTPM managers' replies
as the verifier's client reads them (rpcapi.vtpm_manager: get_identity,
activate_credential, attest, certify_migration_key).

The reply is the fuzzer's JSON, handed to the client's real reply
parsing in place of what oslo.messaging would have decoded.
"""

from korora_nova.rpcapi import vtpm_manager
from korora_nova.verifier import manager
from fuzz import common
from fuzz import keys


class _Replying(vtpm_manager.VTPMManagerAPI):
    """The client with its transport replaced by one fixed reply."""

    def __init__(self, reply):
        self.signer = keys.verifier_signer()
        self.reply = reply

    def _call(self, host, method, timeout=None, version=None, **kwargs):
        return self.reply


def fuzz_one_input(data):
    value = common.json_value(data)
    common.answer(manager._nonce, value)
    common.answer(manager._nonce, common.text(data))
    api = _Replying(value)
    common.answer(api.get_identity, 'compute-1')
    common.answer(api.activate_credential, 'compute-1', b'blob', b'secret')
    common.answer(api.attest, 'compute-1', b'n' * 16)
    common.answer(api.certify_migration_key, 'compute-1', 'token')
