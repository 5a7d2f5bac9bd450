"""HORIZON_CONFIG['customization_module']: Horizon imports it once its
dashboards are loaded. It puts Kororā's host trust into the Live Migrate
form (live_migrate)."""

from openstack_dashboard.dashboards.admin.instances import views

from korora_nova.dashboard import live_migrate

views.LiveMigrateView.form_class = live_migrate.KororaLiveMigrateForm
