from django.utils.translation import gettext_lazy as _
import horizon

from korora_nova.api.policies import policies as rules


class ReferencePolicies(horizon.Panel):
    name = _('Reference policies')
    slug = 'korora_policies'
    # Shown only when korora-api is in the user's catalog, to whom its
    # policy lets list reference policies.
    permissions = ('openstack.services.korora',)
    policy_rules = (('korora', rules.LIST),)
