from django.utils.translation import gettext_lazy as _
import horizon


class HostTrust(horizon.Panel):
    name = _('Host trust')
    slug = 'korora_host_trust'
    # Shown only when korora-api is in the user's catalog.
    permissions = ('openstack.services.korora',)
