"""/migrations: Kororā's record of each live migration, its timeline,
its integrity manifest and its audit entries."""

import datetime

import webob.dec
import webob.exc

from korora_nova.api import policy
from korora_nova.api.policies import migrations as rules
from korora_nova.api.schemas import migrations as schemas
from korora_nova.api import util
from korora_nova.db import api as db
from korora_nova.db import audit_log
from korora_nova import exception
from korora_nova.migration import records
from korora_nova.migration import states


def _time(text):
    """A query's ISO 8601 time as the database's naive UTC."""
    value = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def _migration(row):
    return {'uuid': row.uuid, 'instance_uuid': row.instance_uuid,
            'source_host': row.source_host, 'dest_host': row.dest_host,
            'state': row.state, 'final': states.is_final(row.state),
            'reason': row.reason, 'created_at': util.iso(row.created_at),
            'updated_at': util.iso(row.updated_at)}


def _entry(entry):
    return {'seq': entry.seq, 'created_at': util.iso(entry.created_at),
            'host': entry.host, 'step': entry.step,
            'from_state': entry.from_state, 'to_state': entry.to_state,
            'details': entry.details, 'entry_hash': entry.entry_hash,
            'intact': audit_log.hash_of(entry) == entry.entry_hash}


def _manifest(row):
    manifest, problem = records.checked_manifest(row)
    if problem is not None:
        return {'valid': False, 'problem': problem}
    if manifest is None:
        return None
    return {'valid': True, 'problem': None,
            'source_host': manifest.source_host,
            'dest_host': manifest.dest_host, 'counter': manifest.counter,
            'items': {name: 'sha256:%s' % digest
                      for name, digest in manifest.items.items()}}


@webob.dec.wsgify
def list_migrations(req):
    policy.authorize(req, rules.LIST)
    values = util.query(req, schemas.LIST_QUERY)
    limit = util.page_limit(values)
    try:
        rows = db.migration_page(
            limit, values.get('marker'), values.get('instance_uuid'),
            values.get('host'), values.get('state'),
            _time(values['changed_since']) if 'changed_since' in values
            else None,
            _time(values['changed_before']) if 'changed_before' in values
            else None)
    except exception.MigrationNotFound as error:
        raise util.error(webob.exc.HTTPBadRequest, str(error))
    except ValueError as error:
        raise util.error(webob.exc.HTTPBadRequest,
                         'query string: %s' % error)
    items = [_migration(row) for row in rows]
    return util.json_response(util.links(
        req, 'migrations', items, limit, lambda item: item['uuid'], values))


@webob.dec.wsgify
def show_migration(req):
    policy.authorize(req, rules.SHOW)
    uuid = util.path_item(req, 'uuid')
    try:
        row = records.get(uuid)
    except exception.MigrationNotFound as error:
        raise util.error(webob.exc.HTTPNotFound, str(error))
    entries = records.history(row.uuid)
    detail = _migration(row)
    detail['recovery'] = (None if states.is_final(row.state)
                          else states.RESUME[row.state])
    detail['timeline'] = [
        {'state': entry.to_state, 'at': util.iso(entry.created_at),
         'host': entry.host, 'step': entry.step}
        for entry in entries if entry.to_state]
    detail['manifest'] = _manifest(row)
    detail['audit_entries'] = [_entry(entry) for entry in entries]
    return util.json_response({'migration': detail})
