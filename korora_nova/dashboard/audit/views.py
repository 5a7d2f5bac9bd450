from django.urls import reverse_lazy
from openstack_auth import policy
from django.utils.translation import gettext_lazy as _
from horizon import forms
from horizon import messages
from horizon import views

from korora_nova.api.policies import audit as rules
from korora_nova.dashboard.audit import forms as audit_forms
from korora_nova.dashboard import api
from korora_nova.dashboard import display
from korora_nova import exception

ANCHORS_SHOWN = 20
# The API's own rule for POST /audit/anchors: the button shows only to
# whom the API would obey.
ANCHOR_RULES = (('korora', rules.ANCHOR),)


class IndexView(views.HorizonTemplateView):
    """What korora-manage audit verify reports, the head to keep outside
    the database, the latest TPM anchors."""
    template_name = 'korora/audit/index.html'
    page_title = _('Audit log')

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context['can_anchor'] = policy.check(ANCHOR_RULES, self.request)
        client = api.client(self.request)
        try:
            context['report'] = client.audit_verify()['audit']
            head = client.audit_head()
            context['anchors'] = client.audit_anchors(limit=ANCHORS_SHOWN)
        except exception.APIRequestFailed as error:
            messages.error(self.request, str(error))
            return context
        context['head'] = head
        context['head_text'] = display.audit_head(head)
        return context


class AnchorView(forms.ModalFormView):
    form_class = audit_forms.AnchorForm
    template_name = 'korora/audit/anchor.html'
    modal_id = 'korora_anchor_modal'
    page_title = _('Anchor now')
    submit_label = _('Anchor now')
    submit_url = reverse_lazy('horizon:admin:korora_audit:anchor')
    success_url = reverse_lazy('horizon:admin:korora_audit:index')
