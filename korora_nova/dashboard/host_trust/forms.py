"""Enroll a host, set its policy, record a policy from it: korora-api's
POST /hosts, PUT /hosts/{host}/policy and POST /hosts/{host}/quote."""

import json

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from horizon import forms
from horizon import messages

from korora_nova.attestation import pcr_values as pcr_module
from korora_nova.attestation import policy as policy_module
from korora_nova.dashboard import api
from korora_nova.dashboard import display
from korora_nova.dashboard import errors
from korora_nova import exception

NO_POLICY = ''
TOFU_HELP = _(
    'Trust on first use: accept the TPM\'s endorsement key without a '
    'certificate from a CA in [korora] ek_ca_bundle. Anyone who controls '
    'the host now can enroll a software TPM; use it only for a host you '
    'have just installed yourself.')


def policy_field(request, required):
    """A select of the API's policies (empty and an error message when
    the API cannot list them)."""
    policies = errors.report(request, _('Listing policies'),
                             api.client(request).policies,
                             limit=settings.API_RESULT_LIMIT) or []
    choices = display.policy_choices(policies)
    if not required:
        choices.insert(0, (NO_POLICY, _('No policy (none trusts it yet)')))
    return forms.ThemableChoiceField(label=_('Policy'), choices=choices,
                                     required=required)


class EnrollHostForm(forms.SelfHandlingForm):
    host = forms.CharField(label=_('Host name'), max_length=255,
                           help_text=_('The compute host as Nova names it '
                                       '(its [DEFAULT] host).'))
    trust_on_first_use = forms.BooleanField(
        label=_('Trust on first use'), required=False, help_text=TOFU_HELP)

    def __init__(self, request, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields['policy'] = policy_field(request, required=False)
        self.order_fields(['host', 'policy', 'trust_on_first_use'])

    def handle(self, request, data):
        host = errors.report(
            request, _('Enrolling %s') % data['host'],
            api.client(request).enroll_host, data['host'].strip(),
            policy=data['policy'] or None,
            trust_on_first_use=data['trust_on_first_use'])
        if host is None:
            return False
        messages.success(request, _('Enrolled %(host)s: %(state)s') % {
            'host': host['name'], 'state': display.trust_state(host)})
        return host


class SetPolicyForm(forms.SelfHandlingForm):
    host = forms.CharField(label=_('Host'), widget=forms.TextInput(
        attrs={'readonly': 'readonly'}))

    def __init__(self, request, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields['policy'] = policy_field(request, required=True)

    def handle(self, request, data):
        host = errors.report(
            request, _('Setting the policy of %s') % data['host'],
            api.client(request).set_host_policy, data['host'],
            data['policy'])
        if host is None:
            return False
        messages.success(request, _('%(host)s now follows policy '
                                    '%(policy)s') % {
            'host': host['name'], 'policy': host['policy']})
        return host


class RecordPolicyForm(forms.SelfHandlingForm):
    """The policy of exactly what a known-good host's TPM quotes now, as
    a file for the operator to sign on their own machine: the web server
    never holds the operator's key, so it does not sign or import."""
    host = forms.CharField(label=_('Host'), widget=forms.TextInput(
        attrs={'readonly': 'readonly'}))
    name = forms.CharField(label=_('Policy name'), max_length=255)
    version = forms.IntegerField(label=_('Version'), min_value=1,
                                 max_value=policy_module.MAX_VERSION,
                                 initial=1)

    def handle(self, request, data):
        """{host, quoted_at, name, version, document} or False."""
        quote = errors.report(request, _('Quoting %s') % data['host'],
                              api.client(request).quote_host, data['host'])
        if quote is None:
            return False
        try:
            reference = policy_module.from_json(policy_module.from_values(
                data['name'], data['version'],
                pcr_module.from_json(quote['pcr_values'])).to_json())
        except exception.KororaError as error:
            messages.error(request, _('Recording a policy from %(host)s '
                                      'failed: %(reason)s') % {
                'host': data['host'], 'reason': error})
            return False
        return {'host': data['host'], 'quoted_at': quote['quoted_at'],
                'name': reference.name, 'version': reference.version,
                'document': json.dumps(reference.to_json(), indent=2,
                                       sort_keys=True)}
