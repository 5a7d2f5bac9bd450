"""oslo.messaging plumbing shared by korora's services.

Evidence travels as JSON, so byte strings cross the bus base64-encoded,
and every decoded field is bounded before it is used.
"""

import base64
import binascii

from oslo_context import context as oslo_context
import oslo_messaging as messaging

from korora_nova import conf
from korora_nova import exception

CONF = conf.CONF

_transports = {}


def get_transport():
    """The RPC transport of [DEFAULT] transport_url, one per process."""
    if 'rpc' not in _transports:
        _transports['rpc'] = messaging.get_rpc_transport(CONF)
    return _transports['rpc']


def get_notification_transport():
    if 'notifications' not in _transports:
        _transports['notifications'] = messaging.get_notification_transport(
            CONF)
    return _transports['notifications']


def get_notifier(publisher_id):
    return messaging.Notifier(get_notification_transport(),
                              publisher_id=publisher_id)


def cleanup():
    for transport in _transports.values():
        transport.cleanup()
    _transports.clear()


def get_server(topic, server, endpoints):
    target = messaging.Target(topic=topic, server=server)
    return messaging.get_rpc_server(get_transport(), target, endpoints,
                                    executor='threading')


def get_client(topic, base_version, upgrade_level, aliases):
    """An RPC client of topic capped, as Nova caps its own, by the
    [upgrade_levels] option value upgrade_level: a version, a release
    name in aliases, or empty for no cap (every node upgraded)."""
    target = messaging.Target(topic=topic, version=base_version)
    version_cap = aliases.get(upgrade_level, upgrade_level) or None
    return messaging.get_rpc_client(get_transport(), target,
                                    version_cap=version_cap)


def request_context(request_id=None):
    """A request context (fresh, or with the request id of the API
    request it serves), so that one request id follows a call into the
    logs of the service that answers it."""
    return oslo_context.RequestContext(
        overwrite=False, request_id=request_id).to_dict()


def encode(data):
    return base64.b64encode(data).decode('ascii')


def decode(text, what, limit):
    """Decode a base64 field of a message, refusing oversized input."""
    if not isinstance(text, str) or len(text) > (limit * 4) // 3 + 4:
        raise exception.EvidenceError(
            '%s is missing or larger than %d bytes' % (what, limit))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise exception.EvidenceError('%s is not base64' % what)
