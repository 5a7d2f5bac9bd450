"""The Horizon plugin's one door to korora-api.

A korora_nova.client.v1.Client on the logged-in user's Keystone token,
at the korora endpoint of the user's catalog, as Horizon's own API
wrappers make their clients (openstack_dashboard.api._nova).
A host's quote and an audit anchor are believed only when signed by a
verifier key of the setting KORORA_VERIFIER_PUBLIC_KEYS (PEM files).
"""

from django.conf import settings
from keystoneauth1 import session
from keystoneauth1 import token_endpoint
from openstack_auth import utils as auth_utils
from openstack_dashboard.api import base

from korora_nova.client import v1

SERVICE_TYPE = v1.SERVICE_TYPE
VERIFIER_KEYS_SETTING = 'KORORA_VERIFIER_PUBLIC_KEYS in Horizon\'s settings'


def is_enabled(request):
    """Is korora-api in the user's catalog? Without it, Horizon
    behaves as it does without the plugin."""
    return base.is_service_enabled(request, SERVICE_TYPE)


def client(request):
    endpoint = base.url_for(request, SERVICE_TYPE)
    verify = (False if settings.OPENSTACK_SSL_NO_VERIFY
              else settings.OPENSTACK_SSL_CACERT or True)
    auth = token_endpoint.Token(endpoint=endpoint,
                                token=request.user.token.id)
    return v1.Client(session.Session(
        auth=auth, verify=verify,
        original_ip=auth_utils.get_client_ip(request)),
        endpoint_override=endpoint,
        verifier_public_keys=getattr(settings, 'KORORA_VERIFIER_PUBLIC_KEYS',
                                     ()),
        verifier_keys_setting=VERIFIER_KEYS_SETTING)
