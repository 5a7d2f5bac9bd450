import json

from django.conf import settings
from django.urls import reverse
from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _
from horizon import exceptions
from horizon import forms
from horizon import messages
from horizon import tables
from horizon import views

from korora_nova.dashboard import api
from korora_nova.dashboard import display
from korora_nova.dashboard.policies import forms as policy_forms
from korora_nova.dashboard.policies import tables as policy_tables
from korora_nova import exception

INDEX = 'horizon:admin:korora_policies:index'


class IndexView(tables.DataTableView):
    table_class = policy_tables.PoliciesTable
    page_title = _('Reference policies')

    def get_data(self):
        try:
            return api.client(self.request).policies(
                limit=settings.API_RESULT_LIMIT)
        except exception.APIRequestFailed as error:
            messages.error(self.request, str(error))
            return []


class DetailView(views.HorizonTemplateView):
    """A policy version: its PCR document, whether its signature holds."""
    template_name = 'korora/policies/detail.html'
    page_title = _('Policy {{ version.name }} version {{ version.version }}')

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            name, number = display.split_policy_version_id(
                self.kwargs['policy'])
            version = api.client(self.request).policy_version(name, number)
        except ValueError:
            messages.error(self.request, _('No policy version %s') %
                           self.kwargs['policy'][:300])
            raise exceptions.Http302(reverse(INDEX))
        except exception.APIRequestFailed as error:
            messages.error(self.request, str(error))
            raise exceptions.Http302(reverse(INDEX))
        context['version'] = version
        context['pcrs'] = [
            (bank, index, digests)
            for bank, indexes in sorted(version['document']['pcrs'].items())
            for index, digests in sorted(indexes.items(),
                                         key=lambda item: int(item[0]))]
        context['document'] = json.dumps(version['document'], indent=2,
                                         sort_keys=True)
        return context


class ImportView(forms.ModalFormView):
    form_class = policy_forms.ImportPolicyForm
    template_name = 'korora/policies/import.html'
    modal_id = 'korora_import_policy_modal'
    page_title = _('Import policy')
    submit_label = _('Import policy')
    submit_url = reverse_lazy('horizon:admin:korora_policies:import')
    success_url = reverse_lazy(INDEX)
