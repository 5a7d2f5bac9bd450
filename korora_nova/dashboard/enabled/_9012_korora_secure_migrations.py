# Admin -> Kororā -> Secure migrations, and the instance page's Kororā
# tab (the instance's last refused, aborted or quarantined migration).
PANEL = 'korora_secure_migrations'
PANEL_DASHBOARD = 'admin'
PANEL_GROUP = 'korora'
ADD_PANEL = 'korora_nova.dashboard.secure_migrations.panel.SecureMigrations'
_TAB = 'korora_nova.dashboard.instance_tab.KororaTab'
EXTRA_TABS = {
    'openstack_dashboard.dashboards.project.instances.tabs.'
    'InstanceDetailTabs': (_TAB,),
    'openstack_dashboard.dashboards.admin.instances.tabs.'
    'AdminInstanceDetailTabs': (_TAB,),
}
