"""Kororā in Horizon's Live Migrate form (Admin -> Instances).

For an instance Kororā applies to, each host is shown with its trust
from korora-api (the instance's trust: what nova-scheduler's
TrustedVTPMFilter would say now); an untrusted one is marked
"(untrusted: REASON)" and cannot be picked, and a request naming one is
refused with the reason before Nova is called. "Automatically schedule
new host" stays: the scheduler's filter decides then. Without korora-api
in the catalog, or for other instances, the form is Horizon's own.
"""

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from horizon import forms
from openstack_dashboard import api as os_api
from openstack_dashboard.dashboards.admin.instances import forms as admin

from korora_nova.dashboard import api
from korora_nova.dashboard import applies
from korora_nova import exception

NOT_ENROLLED = _('not enrolled with Kororā')
DISABLED = {'disabled': 'disabled', 'aria-disabled': 'true',
            'style': 'pointer-events: none; opacity: 0.5'}


def _requires_trusted_host(request, instance_id):
    """Does Kororā apply (applies)? True when Nova or Glance cannot say:
    the form then shows Kororā's view, never less."""
    enforce = getattr(settings, 'KORORA_ENFORCE_FOR_ALL_INSTANCES', False)
    try:
        server = os_api.nova.server_get(request, instance_id)
        flavor = server.flavor or {}
        extra_specs = flavor.get('extra_specs')
        if extra_specs is None:
            extra_specs = os_api.nova.flavor_get_extras(
                request, flavor['id'], raw=True)
        if applies.requires_trusted_host(extra_specs, {}, enforce):
            return True
        image = server.image.get('id') if server.image else None
        properties = (os_api.glance.image_get(request, image).properties
                      if image else {})
        return applies.requires_trusted_host(extra_specs, properties)
    except Exception:
        return True


def refusals(request, instance_id, hosts):
    """{host: reason} of the hosts Kororā refuses for the instance."""
    try:
        trust = api.client(request).instance_trust(instance_id)
    except exception.APIRequestFailed as error:
        return {host: str(error) for host in hosts}
    known = {entry['host']: entry for entry in trust}
    refused = {}
    for host in hosts:
        entry = known.get(host)
        if entry is None:
            refused[host] = NOT_ENROLLED
        elif not entry['allowed']:
            refused[host] = entry['reason']
    return refused


class KororaLiveMigrateForm(admin.LiveMigrateForm):

    def populate_host_choices(self, request, initial):
        choices = super().populate_host_choices(request, initial)
        self.korora_refused = {}
        instance_id = initial.get('instance_id')
        if not (api.is_enabled(request) and
                _requires_trusted_host(request, instance_id)):
            return choices
        hosts = [value for value, _label in choices
                 if value not in ('', 'AUTO_SCHEDULE')]
        self.korora_refused = refusals(request, instance_id, hosts)
        labels = {}
        for host, reason in self.korora_refused.items():
            # The verdict's summary starts with "untrusted: " too.
            labels[host] = _('%(host)s (untrusted: %(reason)s)') % {
                'host': host, 'reason': reason.removeprefix('untrusted: ')}
        disabled = set(labels.values())
        self.fields['host'].widget = forms.ThemableSelectWidget(
            transform_html_attrs=lambda label: (
                DISABLED if label in disabled else {}))
        return [(value, labels.get(value, label)) for value, label in choices]

    def clean(self):
        data = super().clean()
        reason = self.korora_refused.get(data.get('host'))
        if reason is not None:
            raise forms.ValidationError(
                _('Kororā refuses %(host)s: %(reason)s')
                % {'host': data['host'], 'reason': reason})
        return data
