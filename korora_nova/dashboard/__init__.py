"""The Horizon plugin: Admin -> Kororā (Host trust, Secure migrations,
Reference policies, Audit log),
Kororā's host trust in the Live Migrate form (customization), and the
instance page's Kororā tab (instance_tab).

It talks to korora-api only, through ``api``. Installed by copying
``enabled/_9*.py`` into Horizon's ``openstack_dashboard/local/enabled``
and ``local_settings.d/_9*.py`` (``HORIZON_CONFIG['customization_module']
= 'korora_nova.dashboard.customization'``) into its
``local/local_settings.d`` (doc/source/admin/horizon.rst), which also
gives Horizon korora-api's policy (conf/default_policies/korora.yaml).
"""
