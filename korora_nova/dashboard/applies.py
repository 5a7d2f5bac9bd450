"""Does Kororā apply to an instance? The rule of
korora_nova.filters.trusted_vtpm.requires_trusted_host, on what Horizon
reads from Nova and Glance (Horizon does not import Nova; a unit test
holds the two to the same answers)."""

EXTRA_SPEC = 'korora:trusted_host'


def requires_trusted_host(extra_specs, image_properties,
                          enforce_for_all=False):
    """A vTPM (hw:tpm_version in the flavor, or hw_tpm_version in the
    image), the flavor's korora:trusted_host=required, or every instance
    with enforce_for_all (nova.conf's [korora]
    enforce_for_all_instances)."""
    if enforce_for_all:
        return True
    if extra_specs.get(EXTRA_SPEC) == 'required':
        return True
    return bool(extra_specs.get('hw:tpm_version') or
                image_properties.get('hw_tpm_version'))
