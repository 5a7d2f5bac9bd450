"""Step 1 of a Kororā live migration: mutual attestation before anything
moves.

The destination attests the source, the source attests the destination,
each with a fresh nonce, checking the peer's quote itself against its
enrolled AK and policy. Nothing from the message bus is believed but a
quote the TPM signed over our own nonce. Any doubt raises Nova's
MigrationPreCheckError: the instance stays ACTIVE on its source and the
reason reaches the instance action.
"""

from nova import exception as nova_exception
from nova import objects
from oslo_log import log as logging

from korora_nova import exception
from korora_nova.filters import trusted_vtpm
from korora_nova.verifier import attestation
from korora_nova.vtpm_manager import rpcapi

LOG = logging.getLogger(__name__)


def applies(instance):
    return trusted_vtpm.requires_trusted_host(instance.flavor,
                                              instance.image_meta)


def refuse(instance, reason):
    LOG.warning('Korora refuses the live migration of %s: %s',
                instance.uuid, reason)
    raise nova_exception.MigrationPreCheckError(
        reason='Korora: %s' % reason)


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
               % (role, verdict.summary()))
    LOG.info('Korora: %s host of the live migration of %s attested: %s',
             role, instance.uuid, verdict.summary())
    return verdict


def claim_destination(dest_check_data, instance, destination):
    """On the destination: say who we are to the source.

    The claim travels back in the pre-check data (LiveMigrateData's
    `migration` field, which Nova replaces with its own record before the
    transfer). A claim alone proves nothing: the source checks it against
    the conductor's record where that names a host, and attests the
    claimed host's TPM itself. Until the vTPM secret is wrapped to a key
    only the attested destination's TPM holds (the next step of the
    protocol), a destination lying about its name on the scheduler's path
    is not caught here.
    """
    dest_check_data.migration = objects.Migration(
        dest_compute=destination, source_compute=instance.host,
        instance_uuid=instance.uuid)
    return dest_check_data


def destination_of(context, instance, dest_check_data):
    """The destination to attest, from the source's point of view."""
    claimed = None
    if dest_check_data.obj_attr_is_set('migration'):
        claimed = dest_check_data.migration.dest_compute
    try:
        ordered = objects.Migration.get_by_instance_and_status(
            context, instance.uuid, 'accepted').dest_compute
    except nova_exception.MigrationNotFoundByStatus:
        ordered = None
    if ordered and claimed and ordered != claimed:
        refuse(instance, 'the destination says it is %s but the migration '
               'was ordered to %s' % (claimed, ordered))
    return ordered or claimed
