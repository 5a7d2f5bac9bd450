"""The Horizon plugin: Admin -> Kororā (Host trust, Secure migrations),
Kororā's host trust in the Live Migrate form (customization), and the
instance page's Kororā tab (instance_tab).

It talks to korora-api only, through ``api``; installed by copying
``enabled/_9*.py`` into Horizon's ``openstack_dashboard/local/enabled``
and setting ``HORIZON_CONFIG['customization_module']`` to
``korora_nova.dashboard.customization``
(doc/source/admin/horizon.rst).
"""
