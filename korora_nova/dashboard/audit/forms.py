"""Anchor the audit log's head in a host's TPM now: korora-api's POST
/audit/anchors (microversion 1.1)."""

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from horizon import forms
from horizon import messages

from korora_nova.dashboard import api
from korora_nova.dashboard import errors


class AnchorForm(forms.SelfHandlingForm):
    def __init__(self, request, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        hosts = errors.report(request, _('Listing hosts'),
                              api.client(request).hosts,
                              limit=settings.API_RESULT_LIMIT) or []
        self.fields['host'] = forms.ThemableChoiceField(
            label=_('Host'), choices=[(host['name'], host['name'])
                                      for host in hosts],
            help_text=_('An enrolled host whose TPM counts and signs the '
                        'head: deleting the log\'s tail afterwards shows '
                        'in "audit verify".'))

    def handle(self, request, data):
        anchor = errors.report(request, _('Anchoring the audit log'),
                               api.client(request).create_audit_anchor,
                               data['host'])
        if anchor is None:
            return False
        messages.success(request, _('Anchored the audit log at seq %(seq)s '
                                    'in %(host)s\'s TPM') % {
            'seq': anchor.get('seq', '?'), 'host': data['host']})
        return anchor
