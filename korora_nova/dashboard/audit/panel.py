from django.utils.translation import gettext_lazy as _
import horizon

from korora_nova.api.policies import audit as rules


class AuditLog(horizon.Panel):
    name = _('Audit log')
    slug = 'korora_audit'
    # Shown only when korora-api is in the user's catalog, to whom its
    # policy lets verify the log.
    permissions = ('openstack.services.korora',)
    policy_rules = (('korora', rules.VERIFY),)
