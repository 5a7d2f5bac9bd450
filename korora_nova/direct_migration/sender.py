"""The source's half of a direct migration (korora-manage server
migrate DOMAIN --to HOST), which also drives the destination's half
(receiver) through the peer command. In order::

    destination  request          its signed request; the verifier
                                  attests it and this host
    source       attest_destination, seal
                                  the destination's certified key; the
                                  vTPM secret sealed to it
    destination  open_transfer    the incoming domain is approved there
    source       libvirt          the domain moves and arrives paused;
                                  this host keeps its definition
    source       measure          the manifest of what left, disks
                                  included
    destination  verify_arrival   resumed there once verified, paused
                                  when quarantined
    source       commit           the counter advances, this host's
                                  copy goes

Until the transfer starts, any failure aborts the record and the domain
keeps running here. After it, the source's copy stays until the
verifier recorded the arrival as verified and the commit went through:
a quarantined or unproven arrival leaves one paused copy there and the
stopped definition here, never two running copies.

The destination's answers on the pipe are not believed: the record it
names is checked by the verifier's signed answers to this host, and the
commit needs the verifier's authorization, which it gives only for a
verified arrival.
"""

import dataclasses

from oslo_log import log as logging

from korora_nova import exception
from korora_nova.direct_migration import domains as domains_module
from korora_nova.direct_migration import peer as peer_module
from korora_nova.direct_migration import receiver
from korora_nova.hooks import commit
from korora_nova.hooks import protocol as protocol_module
from korora_nova.migration import states

LOG = logging.getLogger(__name__)

NOVA_NAMESPACE = 'http://openstack.org/xmlns/libvirt/nova/'
# The manifest holds the domain's disks too: nothing here knows whether
# the destination's storage is the same as this host's (libxl copies no
# disk), and the disk it runs from there must be the one that left.
# Raw file and block disks only; others are refused before anything
# moves.
DISKS_IN_MANIFEST = True


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a direct migration ended: state COMMITTED, or QUARANTINED,
    ABORTED or HELD (by the verifier's record), with the record's UUID
    and the reason when not committed."""
    state: str
    migration_uuid: str
    domain: str
    reason: str = None


def migrate(host, conf, domains, backend, domain_name, dest, live=False):
    """Move domain_name from this host to dest; raises KororaError
    (StepRefused with the verifier's reasons) when it was refused
    before anything moved."""
    dest = peer_module.checked_host(dest)
    if dest == host:
        raise exception.UsageError('%s is this host' % dest)
    options = conf.korora_direct_migration
    domain = domains.find(domain_name)
    domains.check_movable(domain)
    xml, facts = domains.definition(domain)
    _refuse_nova_instance(xml, facts)
    backend.check_migratable(facts.uuid, disks=DISKS_IN_MANIFEST)
    vtpm = facts.vtpm
    secret_uuid = vtpm.secret_uuid if vtpm is not None else None
    secret = domains.secret_value(secret_uuid) if secret_uuid else None
    destination = domains_module.Domains(peer_module.filled(
        options.libvirt_uri, dest, 'libvirt_uri'))
    protocol = protocol_module.for_host(host, conf)
    try:
        with peer_module.Peer(options.peer_command, dest,
                              options.peer_timeout) as peer:
            record = _hand_over(protocol, peer, facts.uuid, host, dest,
                                secret, secret_uuid)
            _transfer(protocol, peer, domains, domain, destination, record,
                      options, live, conf.korora
                      .allow_unencrypted_migration_stream)
            return _finish(protocol, peer, domains, domain, backend,
                           record, secret, facts.name)
    finally:
        destination.close()


def _refuse_nova_instance(xml, facts):
    """Nova's instances move through Nova, whose hooks run the same
    steps; moving one behind Nova's back would leave Nova wrong."""
    if NOVA_NAMESPACE in xml:
        raise exception.UsageError(
            'domain %s is a Nova instance: move it with openstack server '
            'migrate --live-migration (Korora\'s hooks in nova-compute run '
            'the same steps)' % facts.name)


def _hand_over(protocol, peer, instance_uuid, host, dest, secret,
               secret_uuid):
    """The record (TRANSFERRING) once the destination approved the
    domain; aborted on any refusal."""
    record = protocol_module.MigrationRecord.from_claims(
        peer.call('request', instance_uuid=instance_uuid, source=host))
    try:
        record, key = protocol.attest_destination(record)
        if (record.source_host, record.dest_host) != (host, dest):
            raise exception.StepRefused(
                'the verifier\'s record moves %s from %s to %s, not from '
                '%s to %s' % (record.instance_uuid, record.source_host,
                              record.dest_host, host, dest))
        envelope = protocol.seal(record, key, secret) if secret else None
        peer.call('open_transfer', envelope=envelope,
                  secret_uuid=secret_uuid)
    except exception.KororaError as error:
        _abort(protocol, peer, record, error)
        raise
    return record


def _transfer(protocol, peer, domains, domain, destination, record,
              options, live, allow_unencrypted):
    stream_uri = (peer_module.filled(options.stream_uri, record.dest_host,
                                     'stream_uri')
                  if options.stream_uri else None)
    try:
        domains.migrate(domain, destination, stream_uri,
                        options.listen_address or None, live,
                        allow_unencrypted)
    except exception.KororaError as error:
        _abort(protocol, peer, record, error)
        raise


def _finish(protocol, peer, domains, domain, backend, record, secret,
            name):
    """Measure here, verify there, commit here."""
    try:
        record = protocol.measure(record, secret, DISKS_IN_MANIFEST)
    except exception.KororaError as error:
        # The domain is there, paused: it stays so until this host
        # proves what it sent (korora-manage migration show names it).
        LOG.error('Korora: no manifest of migration %s: %s', record.uuid,
                  error)
        return Outcome(receiver.HELD, record.uuid, name,
                       'no manifest from %s: %s' % (protocol.host, error))
    arrival = peer.call('verify_arrival')
    if not isinstance(arrival, dict):
        arrival = {}
    try:
        shown = protocol.show(record)
    except exception.KororaError as error:
        # Unread is not verified: this host's copy stays.
        return Outcome(receiver.HELD, record.uuid, name,
                       'the verifier\'s record of it could not be read: %s'
                       % error)
    if shown.state == states.VERIFIED:
        # The verifier authorizes the commit of a verified arrival only.
        committed = commit.commit(protocol, shown, backend)
        domains.undefine_stopped(domain)
        return Outcome(committed.state, committed.uuid, name)
    # The destination's words are for the operator; the verifier's
    # record (not VERIFIED) is what kept this host's copy, and what
    # the outcome says.
    item, reason = arrival.get('item'), arrival.get('reason')
    if states.is_final(shown.state):
        state = shown.state
        reason = reason or ('the verifier recorded the migration as %s, '
                            'not verified' % state.lower())
    else:
        state = receiver.HELD
        reason = reason or ('the verifier holds the migration at %s, not '
                            'verified' % shown.state)
    return Outcome(state, record.uuid, name,
                   '%s: %s' % (item, reason) if item else reason)


def _abort(protocol, peer, record, reason):
    commit.abort(protocol, record.uuid, str(reason))
    try:
        peer.call('abort', reason=str(reason))
    except exception.KororaError as error:
        LOG.warning('Korora: the destination did not confirm the abort of '
                    '%s: %s', record.uuid, error)
