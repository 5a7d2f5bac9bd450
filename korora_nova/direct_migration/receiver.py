"""The destination's half of a direct migration (korora-manage server
receive): the destination's steps of the protocol, asked for by the
source over the pipe, in this order::

    request          this host's signed request to receive the domain
    open_transfer    the sealed vTPM secret opened by this host's TPM;
                     the incoming domain is approved from now on (the
                     libvirt hook lets it in), its secret defined here
    verify_arrival   what arrived, measured by this host's vTPM manager
                     and compared by the verifier: resumed when
                     verified, kept paused when quarantined or unproven
    abort            the source gave up: what arrived here goes

The source is not believed either: each step runs only on what the
verifier signs for this host, and a domain runs here only once the
verifier recorded its arrival as verified. One process serves one
migration and keeps the vTPM secret in memory only.
"""

import dataclasses

from oslo_log import log as logging

from korora_nova import exception
from korora_nova.direct_migration import wire
from korora_nova.hooks import commit
from korora_nova.hooks import protocol as protocol_module

LOG = logging.getLogger(__name__)

VERIFIED, QUARANTINED, HELD = 'VERIFIED', 'QUARANTINED', 'HELD'


class Receiver:
    """One incoming migration; step() answers one message."""

    def __init__(self, protocol, domains, backend):
        self.protocol = protocol
        self.domains = domains
        self.backend = backend
        self.record = None
        self.secret = None
        self.secret_uuid = None
        self.done = False

    def step(self, message):
        """The answer (a dict for the wire) to one message."""
        name = message.get('step')
        handler = {'request': self.request,
                   'open_transfer': self.open_transfer,
                   'verify_arrival': self.verify_arrival,
                   'abort': self.abort}.get(name)
        if handler is None:
            return wire.error_answer(wire.FAILED,
                                     'no step %r' % (name,))
        try:
            return wire.answer(handler(message))
        except exception.StepRefused as refusal:
            LOG.warning('Korora: %s refused: %s', name, refusal)
            return wire.error_answer(wire.REFUSED, refusal)
        except exception.KororaError as error:
            LOG.error('Korora: %s failed: %s', name, error)
            return wire.error_answer(wire.FAILED, error)

    def request(self, message):
        if self.record is not None:
            raise exception.PeerError('this migration was requested already')
        self.record = self.protocol.request(_text(message, 'instance_uuid'),
                                            _text(message, 'source'))
        return dataclasses.asdict(self.record)

    def open_transfer(self, message):
        record = self._requested()
        envelope = message.get('envelope')
        if envelope is not None and not isinstance(envelope, str):
            raise exception.PeerError('the envelope is not text')
        self.record, self.secret = self.protocol.open_transfer(record,
                                                               envelope)
        if self.secret is not None:
            self.secret_uuid = _text(message, 'secret_uuid')
            self.domains.define_secret(self.secret_uuid,
                                       self.record.instance_uuid,
                                       self.secret)
        return dataclasses.asdict(self.record)

    def verify_arrival(self, message):
        """VERIFIED (the domain runs), QUARANTINED or HELD (it stays
        paused here), with the reason."""
        record = self._current()
        domain = self.domains.find(record.instance_uuid)
        self.done = True
        try:
            self.protocol.verify_arrival(record, self.secret)
        except exception.Quarantined as failure:
            self.domains.pause(domain)
            LOG.error('Korora quarantined domain %s here: %s: %s',
                      record.instance_uuid, failure.item, failure.reason)
            return {'state': QUARANTINED, 'item': failure.item,
                    'reason': failure.reason}
        except exception.KororaError as error:
            # No proof either way: nothing runs unverified.
            self.domains.pause(domain)
            LOG.error('Korora holds domain %s paused here: %s',
                      record.instance_uuid, error)
            return {'state': HELD, 'reason': str(error)}
        finally:
            self.secret = None
        self.domains.resume(domain)
        return {'state': VERIFIED}

    def abort(self, message):
        """The source gave up before the arrival was checked."""
        record = self._requested()
        if self.done:
            raise exception.PeerError('the arrival was checked already: '
                                      'nothing is removed')
        self.done = True
        self._remove_arrived(record)
        commit.abort(self.protocol, record.uuid,
                     str(message.get('reason') or 'the source gave up'))
        return None

    def ended_early(self):
        """The pipe ended before the migration did: what arrived stays
        paused (the record stays in flight for the operator)."""
        if self.done or self.record is None:
            return
        LOG.error('Korora: the source of migration %s went away before '
                  'its arrival was checked', self.record.uuid)
        try:
            self.domains.pause(self.domains.find(self.record.instance_uuid))
        except exception.KororaError:
            self._remove_arrived(self.record)
            commit.abort(self.protocol, self.record.uuid,
                         'the source went away before the transfer')

    def _remove_arrived(self, record):
        self.secret = None
        if self.secret_uuid:
            self.domains.remove_secret(self.secret_uuid)
        try:
            self.domains.remove_arrived(self.domains.find(
                record.instance_uuid))
        except exception.KororaError:
            pass            # nothing arrived
        commit.remove_arrived_copy(self.backend, record, self.protocol.host)

    def _requested(self):
        if self.record is None:
            raise exception.PeerError('no migration was requested yet')
        return self.record

    def _current(self):
        """The record as the verifier has it now (the source's manifest
        moved it on since open_transfer)."""
        record = self._requested()
        for found in self.protocol.in_flight(record.instance_uuid):
            if found.uuid == record.uuid:
                return found
        raise exception.StepRefused('migration %s is no longer in flight'
                                    % record.uuid)


def _text(message, name):
    value = message.get(name)
    if not isinstance(value, str) or not value:
        raise exception.PeerError('the message carries no %s' % name)
    return value


def serve(host, conf, domains, backend, reader, writer):
    """Answer the source on reader/writer until it ends the pipe."""
    receiver = Receiver(protocol_module.for_host(host, conf), domains,
                        backend)
    try:
        while True:
            message = wire.receive(reader)
            if message is None:
                break
            wire.send(writer, receiver.step(message))
    finally:
        receiver.ended_early()
