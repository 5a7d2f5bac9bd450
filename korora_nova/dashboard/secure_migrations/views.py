from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from horizon import exceptions
from horizon import messages
from horizon import tables
from horizon import views

from korora_nova.dashboard import api
from korora_nova.dashboard.secure_migrations import tables as mig_tables
from korora_nova import exception


class IndexView(tables.DataTableView):
    table_class = mig_tables.MigrationsTable
    page_title = _('Secure migrations')

    def get_data(self):
        try:
            return api.client(self.request).migrations(
                limit=settings.API_RESULT_LIMIT)
        except exception.APIRequestFailed as error:
            messages.error(self.request, str(error))
            return []


class DetailView(views.HorizonTemplateView):
    """The timeline, the manifest and the audit entries of one
    migration."""
    template_name = 'korora/secure_migrations/detail.html'
    page_title = _('Migration {{ migration.uuid }}')

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            migration = api.client(self.request).migration(
                self.kwargs['migration_uuid'])
        except exception.APIRequestFailed as error:
            messages.error(self.request, str(error))
            raise exceptions.Http302(
                reverse('horizon:admin:korora_secure_migrations:index'))
        context['migration'] = migration
        context['audit_intact'] = all(entry['intact'] for entry
                                      in migration['audit_entries'])
        return context
