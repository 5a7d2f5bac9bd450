"""Step 1 of a Kororā live migration: mutual attestation before anything
moves.

The destination attests the source, the source attests the destination,
each with a fresh nonce, checking the peer's quote itself against its
enrolled AK and policy. Nothing from the message bus is believed but a
quote the TPM signed over our own nonce. Any doubt raises Nova's
MigrationPreCheckError: the instance stays ACTIVE on its source and the
reason reaches the instance action.

The destination opens the migration record (REQUESTED) once it has
attested the source and names it in its answer; the source checks that
record against what Nova ordered before it attests the destination.
"""

from nova import exception as nova_exception
from nova import objects
from oslo_log import log as logging

from korora_nova import exception
from korora_nova.filters import trusted_vtpm
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.verifier import attestation
from korora_nova.vtpm_manager import rpcapi

LOG = logging.getLogger(__name__)

# Records in these states may be replaced by a new request: nothing has
# left the source yet.
SUPERSEDABLE = (states.REQUESTED, states.PEERS_ATTESTED,
                states.KEY_CERTIFIED)


def applies(instance):
    return trusted_vtpm.requires_trusted_host(instance.flavor,
                                              instance.image_meta)


class Refused(nova_exception.MigrationPreCheckError):
    """Kororā's refusal; korora_reason is what the migration record
    keeps (without Nova's "Migration pre-check error: ")."""

    def __init__(self, korora_reason):
        super().__init__(reason='Korora: %s' % korora_reason)
        self.korora_reason = korora_reason


def refuse(instance, reason):
    LOG.warning('Korora refuses the live migration of %s: %s',
                instance.uuid, reason)
    raise Refused(reason)


def attest_peer(instance, role, peer):
    """Attest peer (the 'source' or the 'destination') or refuse."""
    if not peer:
        refuse(instance, 'the %s host of the migration is unknown' % role)
    try:
        verdict = attestation.Attestor(rpcapi.VTPMManagerAPI()).attest(peer)
    except exception.HostNotFound:
        refuse(instance, '%s host %s is not enrolled with korora-verifier'
               % (role, peer))
    except exception.KororaError as error:
        refuse(instance, 'the %s host %s could not be attested: %s'
               % (role, peer, error))
    if not verdict.trusted:
        refuse(instance, 'the %s host is not trusted: %s'
               % (role, '; '.join(str(r) for r in verdict.reasons)))
    LOG.info('Korora: %s host of the live migration of %s attested: %s',
             role, instance.uuid, verdict.summary())
    return verdict


def request(instance, source, destination, source_verdict):
    """On the destination, once the source is attested: open the record.

    A record of this instance left before its transfer (an earlier
    request that went no further) is aborted; one that has started
    moving the instance must be finished first.
    """
    for stale in records.in_flight_for_instance(instance.uuid):
        if stale.state not in SUPERSEDABLE:
            refuse(instance, 'migration %s of this instance is %s; it must '
                   'be finished first (korora-manage migration show %s)'
                   % (stale.uuid, stale.state, stale.uuid))
        try:
            records.transition(stale.uuid, destination, states.ABORTED,
                               reason='superseded by a new live migration '
                               'request', expected=stale.state)
        except states.IllegalTransition:
            pass    # finished meanwhile
    return records.create(
        None, instance.uuid, source, destination, host=destination,
        details={'dest_nonce': source_verdict.attestation.extra_data.hex(),
                 'source_verdict': source_verdict.summary()})


def claim_destination(dest_check_data, instance, destination, record):
    """On the destination: tell the source who we are and which record.

    The claim travels back in the pre-check data (LiveMigrateData's
    `migration` field, which Nova replaces with its own record before the
    transfer). A claim alone proves nothing: the source checks it against
    the conductor's record where that names a host, attests the claimed
    host's TPM itself, and seals the vTPM secret to a key only that TPM
    holds.
    """
    dest_check_data.migration = objects.Migration(
        uuid=record.uuid, dest_compute=destination,
        source_compute=instance.host, instance_uuid=instance.uuid)
    return dest_check_data


def claimed_record(context, instance, dest_check_data, source):
    """On the source: the record the destination opened, checked against
    the conductor's order."""
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
        refuse(instance, 'the destination says it is %s but the migration '
               'was ordered to %s' % (claimed, ordered))
    destination = ordered or claimed
    if claim is None or not claim.obj_attr_is_set('uuid'):
        refuse(instance, 'the destination %s did not take part in Korora\'s '
               'protocol (is its compute_driver korora.KororaDriver?)'
               % (destination or 'host'))
    try:
        record = records.get(claim.uuid)
    except states.MigrationNotFound:
        refuse(instance, 'the destination named an unknown migration '
               'record %s' % claim.uuid)
    if (record.instance_uuid, record.source_host, record.dest_host,
            record.state) != (instance.uuid, source, destination,
                              states.REQUESTED):
        refuse(instance, 'migration record %s is not a new request for '
               'this instance from %s to %s' % (record.uuid, source,
                                                destination))
    return record
