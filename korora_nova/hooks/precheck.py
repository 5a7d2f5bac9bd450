"""Step 1 of a Kororā live migration: mutual attestation before anything
moves, and the refusals Nova shows.

The verifier attests the source when the destination asks to open the
record, and the destination when the source asks to go on; each answer
is a signed attestation result bound to the asking hook's nonce
(korora_nova.hooks.protocol). Any doubt raises Nova's
MigrationPreCheckError: the instance stays ACTIVE on its source and the
reason reaches the instance action.

The destination names the record it opened in its answer to the
conductor; the source checks that claim against what Nova ordered and
against the verifier's signed record before it goes on.
"""

from nova import exception as nova_exception
from nova import objects
from oslo_log import log as logging

from korora_nova import exception
from korora_nova.filters import trusted_vtpm

LOG = logging.getLogger(__name__)


def applies(instance):
    return trusted_vtpm.requires_trusted_host(instance.flavor,
                                              instance.image_meta)


def refuse(instance, reason):
    """Nova's own MigrationPreCheckError, "Korora: " and the reason.

    Nova's class itself, not a subclass of ours: a destination's
    refusal travels to nova-conductor over the bus, which rebuilds only
    exceptions of nova's modules (any other would reach the user as an
    unexpected error, HTTP 500). korora_reason is what the migration
    record keeps (without Nova's "Migration pre-check error: ").
    """
    LOG.warning('Korora refuses the live migration of %s: %s',
                instance.uuid, reason)
    error = nova_exception.MigrationPreCheckError(reason='Korora: %s'
                                                  % reason)
    error.korora_reason = reason
    return error


def claim_destination(dest_check_data, instance, destination, record):
    """On the destination: tell the source who we are and which record.

    The claim travels back in the pre-check data (LiveMigrateData's
    `migration` field, which Nova replaces with its own record before the
    transfer). A claim alone proves nothing: the source checks it against
    the conductor's record where that names a host and against the
    verifier's signed record, whose destination the verifier attests and
    whose key it certifies.
    """
    dest_check_data.migration = objects.Migration(
        uuid=record.uuid, dest_compute=destination,
        source_compute=instance.host, instance_uuid=instance.uuid)
    return dest_check_data


def claimed_record(context, instance, dest_check_data, protocol):
    """On the source: the record the destination opened, checked against
    the conductor's order and the verifier's signed record."""
    claim = None
    if dest_check_data.obj_attr_is_set('migration'):
        claim = dest_check_data.migration
    claimed = claim.dest_compute if claim is not None else None
    try:
        ordered = objects.Migration.get_by_instance_and_status(
            context, instance.uuid, 'accepted').dest_compute
    except nova_exception.MigrationNotFoundByStatus:
        ordered = None
    if ordered and claimed and ordered != claimed:
        raise refuse(instance, 'the destination says it is %s but the '
                     'migration was ordered to %s' % (claimed, ordered))
    destination = ordered or claimed
    if claim is None or not claim.obj_attr_is_set('uuid'):
        raise refuse(instance, 'the destination %s did not take part in '
                     'Korora\'s protocol (is its compute_driver '
                     'korora.KororaDriver?)' % (destination or 'host'))
    try:
        found = protocol.in_flight(instance.uuid)
    except exception.StepRefused as error:
        raise refuse(instance, 'the verifier\'s record of the migration '
                     'cannot be read: %s' % error)
    records = [record for record in found if record.uuid == claim.uuid]
    if not records:
        raise refuse(instance, 'the destination named an unknown migration '
                     'record %s' % claim.uuid)
    record = records[0]
    # The verifier certifies the destination's key with the request
    # when it can (KEY_CERTIFIED), else the source's next call does.
    if (record.source_host, record.dest_host) != (
            protocol.host, destination) or record.state not in (
            'REQUESTED', 'PEERS_ATTESTED', 'KEY_CERTIFIED'):
        raise refuse(instance, 'migration record %s is not a new request for '
                     'this instance from %s to %s' % (record.uuid,
                                                      protocol.host,
                                                      destination))
    return record
