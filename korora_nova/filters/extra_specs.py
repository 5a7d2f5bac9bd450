"""Validator of the korora:trusted_host flavor extra spec, registered with
Nova's API through the nova.api.extra_spec_validators entry point."""

from nova.api.validation.extra_specs import base


def register():
    return [
        base.ExtraSpecValidator(
            name='korora:trusted_host',
            description=(
                'Schedule and move instances of this flavor only to hosts '
                'whose vTPM manager holds a fresh trusted attestation '
                'verdict (TrustedVTPMFilter). vTPM flavors get this '
                'without asking.'),
            value={'type': str, 'enum': ['required']},
        ),
    ]
