from django.conf import settings
from django import shortcuts
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
from korora_nova.dashboard.host_trust import forms as host_forms
from korora_nova.dashboard.host_trust import tables as host_tables
from korora_nova import exception

INDEX = 'horizon:admin:korora_host_trust:index'


class IndexView(tables.DataTableView):
    table_class = host_tables.HostTrustTable
    page_title = _('Host trust')

    def get_data(self):
        try:
            return api.client(self.request).hosts(
                limit=settings.API_RESULT_LIMIT)
        except exception.APIRequestFailed as error:
            messages.error(self.request, str(error))
            return []


class DetailView(views.HorizonTemplateView):
    """What korora-manage host show prints: the verdict, its reasons and
    age, the policy, the enrolled EK and AK, the recent verdicts."""
    template_name = 'korora/host_trust/detail.html'
    page_title = _('Host {{ host.name }}')

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            host = api.client(self.request).host(self.kwargs['host'])
        except exception.APIRequestFailed as error:
            messages.error(self.request, str(error))
            raise exceptions.Http302(reverse(INDEX))
        context['host'] = host
        context['state'] = display.trust_state(host)
        context['age'] = display.trust_age(host)
        return context


class EnrollView(forms.ModalFormView):
    form_class = host_forms.EnrollHostForm
    template_name = 'korora/host_trust/enroll.html'
    modal_id = 'korora_enroll_host_modal'
    page_title = _('Enroll host')
    submit_label = _('Enroll host')
    submit_url = reverse_lazy('horizon:admin:korora_host_trust:enroll')
    success_url = reverse_lazy(INDEX)


class SetPolicyView(forms.ModalFormView):
    form_class = host_forms.SetPolicyForm
    template_name = 'korora/host_trust/set_policy.html'
    modal_id = 'korora_set_policy_modal'
    page_title = _('Set policy')
    submit_label = _('Set policy')
    success_url = reverse_lazy(INDEX)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context['submit_url'] = reverse(
            'horizon:admin:korora_host_trust:set_policy',
            args=[self.kwargs['host']])
        return context

    def get_initial(self):
        return {'host': self.kwargs['host']}


class RecordPolicyView(forms.ModalFormView):
    """Quote the host, then show the policy file to sign offline (not a
    redirect: the page is the result)."""
    form_class = host_forms.RecordPolicyForm
    template_name = 'korora/host_trust/record_policy.html'
    modal_id = 'korora_record_policy_modal'
    page_title = _('Record policy')
    submit_label = _('Quote the host')
    success_url = reverse_lazy(INDEX)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context['submit_url'] = reverse(
            'horizon:admin:korora_host_trust:record_policy',
            args=[self.kwargs['host']])
        return context

    def get_initial(self):
        return {'host': self.kwargs['host']}

    def form_valid(self, form):
        recorded = form.handle(self.request, form.cleaned_data)
        if not recorded:
            return self.form_invalid(form)
        return shortcuts.render(
            self.request, 'korora/host_trust/recorded_policy.html',
            dict(recorded, page_title=_('Recorded policy')))
