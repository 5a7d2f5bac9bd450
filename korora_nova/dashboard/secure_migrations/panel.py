from django.utils.translation import gettext_lazy as _
import horizon


class SecureMigrations(horizon.Panel):
    name = _('Secure migrations')
    slug = 'korora_secure_migrations'
    # Shown only when korora-api is in the user's catalog.
    permissions = ('openstack.services.korora',)
