# Horizon runs this snippet in its settings when it is in
# openstack_dashboard/local/local_settings.d/ (devstack copies it there):
# Kororā's host trust in the Live Migrate form (korora_nova.dashboard),
# and korora-api's policy, so that Horizon shows a user only the actions
# the API allows them (a reader sees no write buttons).
import os.path as _path

import korora_nova.dashboard as _korora_dashboard

HORIZON_CONFIG['customization_module'] = (  # noqa: F821
    'korora_nova.dashboard.customization')
# An operator's overrides of korora-api's policy, as for the other
# services: korora_policy.yaml in POLICY_FILES_PATH (need not exist).
POLICY_FILES['korora'] = 'korora_policy.yaml'  # noqa: F821
DEFAULT_POLICY_FILES['korora'] = _path.join(  # noqa: F821
    _path.dirname(_korora_dashboard.__file__), 'conf', 'default_policies',
    'korora.yaml')
