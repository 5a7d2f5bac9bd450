"""The instance page's "Kororā" tab: the instance's last refused,
aborted or quarantined migration and its reason, so that an operator
need not read nova-compute.log."""

from django.utils.translation import gettext_lazy as _
from horizon import tabs

from korora_nova.dashboard import api
from korora_nova import exception

# The states in which Kororā stopped a migration.
STOPPED = ('ABORTED', 'QUARANTINED')


class KororaTab(tabs.Tab):
    name = _('Kororā')
    slug = 'korora'
    template_name = 'korora/instances/_detail_korora.html'

    def allowed(self, request):
        return api.is_enabled(request)

    def get_context_data(self, request):
        instance = self.tab_group.kwargs['instance']
        context = {'instance_id': instance.id, 'latest': None,
                   'stopped': None, 'error': None}
        try:
            client = api.client(request)
            migrations = client.migrations(instance_uuid=instance.id)
            stopped = [m for m in migrations if m['state'] in STOPPED]
            context['latest'] = migrations[0] if migrations else None
            if stopped:
                context['stopped'] = client.migration(stopped[0]['uuid'])
        except exception.APIRequestFailed as error:
            context['error'] = str(error)
        return context
