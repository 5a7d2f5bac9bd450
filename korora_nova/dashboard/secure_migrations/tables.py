"""Kororā's records of live migrations, the most recently changed first."""

from django.utils.translation import gettext_lazy as _
from horizon import tables

from korora_nova.dashboard import display

DETAIL = 'horizon:admin:korora_secure_migrations:detail'


class MigrationsTable(tables.DataTable):
    instance = tables.Column('instance_uuid', verbose_name=_('Instance'))
    source = tables.Column('source_host', verbose_name=_('Source'))
    destination = tables.Column('dest_host', verbose_name=_('Destination'))
    state = tables.Column('state', verbose_name=_('State'), link=DETAIL)
    changed = tables.Column(display.changed, verbose_name=_('Changed'))
    reason = tables.Column('reason', verbose_name=_('Reason'),
                           empty_value='-')

    def get_object_id(self, datum):
        return datum['uuid']

    class Meta:
        name = 'korora_migrations'
        verbose_name = _('Secure migrations')
