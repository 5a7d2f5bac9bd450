from django.conf import settings
from django.utils.translation import gettext_lazy as _
from horizon import messages
from horizon import tables

from korora_nova.dashboard import api
from korora_nova.dashboard.host_trust import tables as host_tables
from korora_nova import exception


class IndexView(tables.DataTableView):
    table_class = host_tables.HostTrustTable
    page_title = _('Host trust')

    def get_data(self):
        try:
            return api.client(self.request).hosts(
                limit=settings.API_RESULT_LIMIT)
        except exception.APIRequestFailed as error:
            messages.error(self.request, str(error))
            return []
