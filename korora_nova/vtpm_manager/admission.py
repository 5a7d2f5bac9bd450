"""Which incoming domains libvirt may accept on a destination host.

The decision korora-vtpm-manager takes for korora-libvirt-hook
(korora_nova.vtpm_manager.hook_server) when libvirt starts an incoming
live migration (``DOMAIN migrate begin -``).

The incoming domain passes when the manager holds exactly one approved
Kororā migration in flight for the instance (the ``<uuid>`` of a
Nova domain is the instance's UUID) whose destination is this host
([DEFAULT] host, the name Nova's compute and the Kororā hooks use) and
whose state is TRANSFERRING: the source and the destination attested
each other with their TPMs, the destination's key was certified, and the
destination opened the sealed vTPM secret (its pre_live_migration,
korora_nova.hooks.driver). Anything else refuses it: no record, a record
for another host, one at another step, more than one.

An approval is what the verifier authorized: the manager records it
when nova-compute of this host presents the verifier-signed
authorization of the transfer (korora_nova.vtpm_manager.manager,
open_transfer), which the verifier issues only for a migration whose
hosts attested each other and whose key it certified. An answer on the
message bus could be forged by whoever can publish there; a signature of
the verifier cannot.

A domain without any TPM passes without a look at the database, unless
[korora] libvirt_hook_require_approval_for_all is set. A domain whose
TPM Kororā cannot migrate at all (passthrough, external, Xen stub
domain, several TPMs) is refused whatever was approved.

"""

import uuid as uuidlib

from korora_nova import exception
from korora_nova.libvirt_hook import protocol

# What each state before TRANSFERRING still lacks, and why later ones
# are not admitted.
_NOT_YET = {
    'REQUESTED': 'the hosts have not attested each other yet',
    'PEERS_ATTESTED': "the destination's key is not certified yet",
    'KEY_CERTIFIED': 'the destination has not opened the sealed vTPM '
                     'secret yet',
    'MEASURED': 'its transfer has ended already',
    'VERIFIED': 'its transfer has ended already',
}


def instance_uuid_of(facts):
    """The instance UUID of a Nova domain (its <uuid>), canonical."""
    if not facts.uuid:
        raise protocol.Refused('the incoming domain XML has no <uuid>')
    try:
        return str(uuidlib.UUID(facts.uuid))
    except ValueError:
        raise protocol.Refused('the incoming domain\'s <uuid> %r is not a UUID'
                               % facts.uuid[:64])


def needs_approval(facts, require_for_all):
    """Whether the domain may come in only with an approved migration.

    Raises protocol.Refused for a TPM Kororā cannot migrate at all.
    """
    refusal = facts.refusal
    if refusal:
        raise protocol.Refused(refusal)
    has_tpm = bool(facts.tpms or facts.xen_stubdom)
    return has_tpm or require_for_all


def check_records(found, instance_uuid, host):
    """Refused unless found (the instance's in-flight migration records)
    is one migration to host, TRANSFERRING. Returns that record."""
    from korora_nova.migration import states

    what = 'no Korora-approved migration of instance %s to %s' % (
        instance_uuid, host)
    if not found:
        raise protocol.Refused('%s: no Korora migration of it is in flight'
                               % what)
    if len(found) > 1:
        raise protocol.Refused(
            '%s: %d Korora migrations of it are in flight (%s)'
            % (what, len(found),
               ', '.join(record.uuid for record in found)))
    record = found[0]
    if record.dest_host != host:
        raise protocol.Refused(
            '%s: Korora migration %s of it goes from %s to %s'
            % (what, record.uuid, record.source_host, record.dest_host))
    if record.state != states.TRANSFERRING:
        why = _NOT_YET.get(record.state)
        if why is None and record.state not in states.ALL:
            why = '%r is not a migration state' % record.state
        raise protocol.Refused('%s: Korora migration %s from %s is %s (%s)'
                               % (what, record.uuid, record.source_host,
                                  record.state, why or 'not TRANSFERRING'))
    return record


def decide(xml, host, require_for_all, load_records):
    """Pass (return a one-line summary) or raise protocol.Refused.

    xml: the incoming domain XML (bytes); load_records(instance_uuid):
    the instance's in-flight migration records, called only when the
    domain needs an approval.
    """
    from korora_nova.hypervisors import domain_xml

    try:
        facts = domain_xml.facts_from_xml(xml)
    except exception.DomainXMLError as error:
        raise protocol.Refused('the incoming domain XML is refused: %s'
                               % error)
    instance_uuid = instance_uuid_of(facts)
    if not needs_approval(facts, require_for_all):
        return 'instance %s has no TPM: no approval needed' % instance_uuid
    record = check_records(load_records(instance_uuid), instance_uuid, host)
    return ('instance %s: Korora migration %s from %s to %s is %s'
            % (instance_uuid, record.uuid, record.source_host,
               record.dest_host, record.state))
