"""Every reference policy version: whether it is active, whether a key
the verifier trusts signed it; "Import policy", "Activate",
"Deactivate"."""

from django import shortcuts
from django.utils.translation import gettext_lazy as _
from horizon import messages
from horizon import tables

from korora_nova.api.policies import policies as rules
from korora_nova.dashboard import api
from korora_nova.dashboard import display
from korora_nova import exception

SCOPE = 'korora'
DETAIL = 'horizon:admin:korora_policies:detail'


class ImportPolicy(tables.LinkAction):
    name = 'import'
    verbose_name = _('Import policy')
    url = 'horizon:admin:korora_policies:import'
    classes = ('ajax-modal',)
    icon = 'upload'
    policy_rules = ((SCOPE, rules.IMPORT),)


class _SetActive(tables.Action):
    """POST /policies/{name}/versions/{version}/(de)activate; the API's
    reason when it refuses."""
    requires_input = False
    active = None

    def allowed(self, request, version=None):
        return version is None or version['active'] != self.active

    def call(self, client, name, number):
        raise NotImplementedError

    def single(self, data_table, request, object_id):
        name, number = display.split_policy_version_id(object_id)
        try:
            self.call(api.client(request), name, number)
        except exception.APIRequestFailed as error:
            messages.error(request, _('%(action)s %(policy)s failed: '
                                      '%(reason)s') % {
                'action': self.verbose_name, 'policy': object_id,
                'reason': error})
        else:
            messages.success(request, self.done % {'policy': object_id})
        return shortcuts.redirect(request.get_full_path())


class Activate(_SetActive):
    name = 'activate'
    verbose_name = _('Activate')
    done = _('%(policy)s is active: hosts that match it are trusted')
    active = True
    policy_rules = ((SCOPE, rules.ACTIVATE),)

    def call(self, client, name, number):
        client.activate_policy(name, number)


class Deactivate(_SetActive):
    name = 'deactivate'
    verbose_name = _('Deactivate')
    done = _('%(policy)s is inactive: hosts that match only it are no '
             'longer trusted')
    active = False
    policy_rules = ((SCOPE, rules.DEACTIVATE),)

    def call(self, client, name, number):
        client.deactivate_policy(name, number)


def _signed(version):
    if version['signed']:
        return display.yes_no(True)
    return '%s (%s)' % (display.yes_no(False), version['signature_problem'])


class PoliciesTable(tables.DataTable):
    name = tables.Column('name', verbose_name=_('Name'), link=DETAIL)
    version = tables.Column('version', verbose_name=_('Version'))
    active = tables.Column(lambda version: display.yes_no(version['active']),
                           verbose_name=_('Active'))
    signed = tables.Column(_signed, verbose_name=_('Signed'))
    imported = tables.Column('imported_at', verbose_name=_('Imported'))

    def get_object_id(self, datum):
        return display.policy_version_id(datum)

    def get_object_display(self, datum):
        return display.policy_version_id(datum)

    class Meta:
        name = 'korora_policies'
        verbose_name = _('Reference policies')
        table_actions = (ImportPolicy,)
        row_actions = (Deactivate, Activate)
