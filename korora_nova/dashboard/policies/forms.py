"""Import a reference policy the operator signed elsewhere: korora-api's
POST /policies. The web server only passes the policy file and its
signature on; it never holds the operator's private key."""

import json

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from horizon import forms
from horizon import messages

from korora_nova.attestation import policy as policy_module
from korora_nova.dashboard import api
from korora_nova.dashboard import display
from korora_nova.dashboard import errors

POLICY_HELP = _('The policy file (JSON: name, version, pcrs), as '
                '"korora-manage policy sign" read it. Upload it or paste it.')
SIGNATURE_HELP = _('Its signature (a compact JWS), made on the operator\'s '
                   'machine with "korora-manage policy sign --signing-key '
                   'operator-key.pem FILE". The operator\'s private key '
                   'never comes to this web server.')


def _text(cleaned, upload, pasted, label, limit):
    """The uploaded file's text, else the pasted text; bounded."""
    upload = cleaned.get(upload)
    if upload is not None:
        if upload.size > limit:
            raise ValidationError(_('%(label)s: at most %(limit)d bytes') % {
                'label': label, 'limit': limit})
        try:
            return upload.read(limit + 1).decode('utf-8')
        except UnicodeDecodeError:
            raise ValidationError(_('%s is not UTF-8 text') % label)
    text = (cleaned.get(pasted) or '').strip()
    if not text:
        raise ValidationError(_('%s: upload a file or paste it') % label)
    if len(text) > limit:
        raise ValidationError(_('%(label)s: at most %(limit)d bytes') % {
            'label': label, 'limit': limit})
    return text


def parse_document(text):
    """The policy file's JSON object; ValidationError with the reason."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValidationError(_('The policy is not valid JSON: %s') % error)
    if not isinstance(document, dict):
        raise ValidationError(_('The policy is not a JSON object'))
    return document


class ImportPolicyForm(forms.SelfHandlingForm):
    policy_file = forms.FileField(label=_('Policy file'), required=False,
                                  help_text=POLICY_HELP)
    policy_text = forms.CharField(
        label=_('or the policy (JSON)'), required=False,
        max_length=policy_module.MAX_POLICY_FILE,
        widget=forms.Textarea(attrs={'rows': 6}))
    signature_file = forms.FileField(label=_('Signature file'),
                                     required=False, help_text=SIGNATURE_HELP)
    signature_text = forms.CharField(
        label=_('or the signature'), required=False,
        max_length=policy_module.MAX_SIGNATURE,
        widget=forms.Textarea(attrs={'rows': 3}))
    active = forms.BooleanField(label=_('Activate it'), required=False,
                                initial=True)

    def clean(self):
        cleaned = super().clean()
        cleaned['document'] = parse_document(_text(
            cleaned, 'policy_file', 'policy_text', _('The policy'),
            policy_module.MAX_POLICY_FILE))
        cleaned['signature'] = _text(
            cleaned, 'signature_file', 'signature_text', _('The signature'),
            policy_module.MAX_SIGNATURE)
        return cleaned

    def handle(self, request, data):
        version = errors.report(
            request, _('Importing the policy'),
            api.client(request).import_policy, data['document'],
            data['signature'], active=data['active'])
        if version is None:
            return False
        messages.success(request, _('Imported policy %(policy)s (%(state)s)')
                         % {'policy': display.policy_version_id(version),
                            'state': _('active') if version['active']
                            else _('inactive')})
        return version
