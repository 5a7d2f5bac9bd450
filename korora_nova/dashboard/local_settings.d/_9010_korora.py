# Horizon runs this snippet in its settings when it is in
# openstack_dashboard/local/local_settings.d/ (devstack copies it there):
# Kororā's host trust in the Live Migrate form (korora_nova.dashboard).
HORIZON_CONFIG['customization_module'] = (  # noqa: F821
    'korora_nova.dashboard.customization')
