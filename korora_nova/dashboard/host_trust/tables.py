"""Every enrolled host and its trust, with "Attest now"."""

from django import shortcuts
from django.utils.translation import gettext_lazy as _
from horizon import messages
from horizon import tables

from korora_nova.dashboard import api
from korora_nova.dashboard import display
from korora_nova import exception


class AttestNow(tables.Action):
    """Ask the verifier for a fresh quote of the host now."""
    name = 'attest'
    verbose_name = _('Attest now')
    requires_input = False
    icon = 'refresh'

    def single(self, data_table, request, object_id):
        try:
            answer = api.client(request).attest_host(object_id)
        except exception.APIRequestFailed as error:
            messages.error(request, _('Attesting %(host)s failed: %(reason)s')
                           % {'host': object_id, 'reason': error})
        else:
            trust = answer['host']['trust']
            report = (messages.success if trust['state'] == 'trusted'
                      else messages.warning)
            report(request, _('Attested now: %s') % (
                trust['summary'] or '%s: %s' % (
                    object_id, display.trust_state(answer['host']))))
        return shortcuts.redirect(request.get_full_path())


class HostTrustTable(tables.DataTable):
    name = tables.Column('name', verbose_name=_('Host'))
    state = tables.Column(display.trust_state, verbose_name=_('Verdict'))
    age = tables.Column(display.trust_age, verbose_name=_('Age of verdict'))
    policy = tables.Column('policy', verbose_name=_('Policy'),
                           empty_value='-')
    summary = tables.Column(display.trust_summary, verbose_name=_('Reasons'))

    def get_object_id(self, datum):
        return datum['name']

    def get_object_display(self, datum):
        return datum['name']

    class Meta:
        name = 'korora_hosts'
        verbose_name = _('Host trust')
        row_actions = (AttestNow,)
