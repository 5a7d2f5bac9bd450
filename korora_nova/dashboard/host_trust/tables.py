"""Every enrolled host and its trust: "Attest now", "Set policy",
"Record policy", "Enroll host", "Remove host"; the write actions only
for who the korora policy lets write."""

import sys

from django import shortcuts
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from horizon import exceptions
from horizon import messages
from horizon import tables

from korora_nova.api.policies import hosts as rules
from korora_nova.dashboard import api
from korora_nova.dashboard import display
from korora_nova import exception

SCOPE = 'korora'
DETAIL = 'horizon:admin:korora_host_trust:detail'


class AttestNow(tables.Action):
    """Ask the verifier for a fresh quote of the host now."""
    name = 'attest'
    verbose_name = _('Attest now')
    requires_input = False
    icon = 'refresh'
    policy_rules = ((SCOPE, rules.ATTEST),)

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


class EnrollHost(tables.LinkAction):
    name = 'enroll'
    verbose_name = _('Enroll host')
    url = 'horizon:admin:korora_host_trust:enroll'
    classes = ('ajax-modal',)
    icon = 'plus'
    policy_rules = ((SCOPE, rules.ENROLL),)


class SetPolicy(tables.LinkAction):
    name = 'set_policy'
    verbose_name = _('Set policy')
    url = 'horizon:admin:korora_host_trust:set_policy'
    classes = ('ajax-modal',)
    policy_rules = ((SCOPE, rules.SET_POLICY),)


class RecordPolicy(tables.LinkAction):
    """A page, not a modal: its result is the policy file to sign."""
    name = 'record_policy'
    verbose_name = _('Record policy')
    url = 'horizon:admin:korora_host_trust:record_policy'
    policy_rules = ((SCOPE, rules.QUOTE),)


class RemoveHost(tables.DeleteAction):
    """Forget the host: the verifier no longer trusts it."""
    name = 'remove'
    policy_rules = ((SCOPE, rules.DELETE),)

    @staticmethod
    def action_present(count):
        return ngettext_lazy('Remove Host', 'Remove Hosts', count)

    @staticmethod
    def action_past(count):
        return ngettext_lazy('Removed Host', 'Removed Hosts', count)

    def delete(self, request, obj_id):
        try:
            api.client(request).delete_host(obj_id)
        except exception.APIRequestFailed as error:
            # The API's reason, instead of Horizon's bare "Unable to".
            messages.error(request, _('Removing %(host)s failed: '
                                      '%(reason)s') % {'host': obj_id,
                                                       'reason': error})
            raise exceptions.HandledException(sys.exc_info())


class HostTrustTable(tables.DataTable):
    name = tables.Column('name', verbose_name=_('Host'), link=DETAIL)
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
        table_actions = (EnrollHost, RemoveHost)
        row_actions = (AttestNow, SetPolicy, RecordPolicy, RemoveHost)
