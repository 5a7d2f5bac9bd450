# Admin -> Kororā: the panel group of korora-nova's panels.
from django.utils.translation import gettext_lazy as _

PANEL_GROUP = 'korora'
PANEL_GROUP_NAME = _('Kororā')
PANEL_GROUP_DASHBOARD = 'admin'
# The plugin's templates; once, as Django refuses an app listed twice.
ADD_INSTALLED_APPS = ['korora_nova.dashboard']
