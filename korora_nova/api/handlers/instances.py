"""/instances/{uuid}/trust: where an instance Kororā applies to may
live-migrate now.

Every enrolled host but the one the instance is on, judged as
nova-scheduler's TrustedVTPMFilter judges it (the same rows, the same
freshness rule: attestation.freshness), each refused one with its
reason. While a migration of the instance is in flight, it may move
nowhere: the verifier refuses a second one.
"""

from oslo_utils import uuidutils
import webob.dec
import webob.exc

from korora_nova.api import policy
from korora_nova.api.policies import instances as rules
from korora_nova.api.schemas import instances as schemas
from korora_nova.api import util
from korora_nova.attestation import freshness
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova.migration import states

CONF = conf.CONF


def _where(instance_uuid):
    """(the host Kororā last saw the instance on or None, the migration
    in flight or None), from its newest migration record."""
    record = db.migration_latest(instance_uuid)
    if record is None:
        return None, None
    if not states.is_final(record.state):
        return record.source_host, record
    if record.state in (states.COMMITTED, states.QUARANTINED):
        return record.dest_host, None
    return record.source_host, None


@webob.dec.wsgify
def trust(req):
    policy.authorize(req, rules.TRUST)
    instance_uuid = util.path_item(req, 'uuid')
    if not uuidutils.is_uuid_like(instance_uuid):
        raise util.error(webob.exc.HTTPBadRequest,
                         '%r is not an instance UUID' % instance_uuid[:64])
    values = util.query(req, schemas.TRUST_QUERY)
    limit = util.page_limit(values)
    current, in_flight = _where(instance_uuid)
    ttl = CONF.korora.trust_ttl
    cutoff = freshness.cutoff(db.utcnow(), ttl)
    rows = db.host_trust_for_scheduling(cutoff)
    hosts = []
    page_rows = db.host_page(limit, values.get('marker'))
    for row in page_rows:
        if row.name == current:
            continue
        if in_flight is not None:
            reason = ('migration %s of this instance is in flight (%s)'
                      % (in_flight.uuid, in_flight.state))
        else:
            why = freshness.refusal(row.name, rows.get(row.name), cutoff,
                                    ttl)
            reason = why[0] if why else None
        hosts.append({'host': row.name, 'allowed': reason is None,
                      'reason': reason})
    page = util.links(req, 'hosts', hosts, limit,
                      lambda item: item['host'], values,
                      last=page_rows[-1].name if len(page_rows) == limit
                      else None)
    page.update(instance_uuid=instance_uuid, current_host=current,
                migration_in_flight=in_flight.uuid if in_flight else None)
    return util.json_response({'trust': page})
