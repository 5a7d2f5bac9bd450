from django.utils.translation import gettext_lazy as _
import horizon

from korora_nova.api.policies import hosts as rules


class HostTrust(horizon.Panel):
    name = _('Host trust')
    slug = 'korora_host_trust'
    # Shown only when korora-api is in the user's catalog, to whom its
    # policy lets list hosts.
    permissions = ('openstack.services.korora',)
    policy_rules = (('korora', rules.LIST),)
