"""What a restarted nova-compute does with the migrations it left.

Nova's own record decides where the instance lives: if Nova still has it
on the source, the migration is aborted and the destination removes what
it received; if Nova has it on the destination, the protocol is carried
forward with the same steps the live path runs (korora_nova.hooks.
protocol): the source measures what crossed, the destination verifies,
the source commits. Either way the vTPM state ends up on exactly one
host, the one Nova runs the instance on.
"""

from nova.compute import utils as compute_utils
from nova.compute import vm_states
from oslo_log import log as logging

from korora_nova import exception
from korora_nova.hooks import arrival
from korora_nova.hooks import commit
from korora_nova.migration import states

LOG = logging.getLogger(__name__)


def resume_all(driver, host):
    """Finish or roll back every in-flight migration host takes part in.
    Never raises: a compute must start even if the verifier is down."""
    try:
        found = driver.korora_protocol().in_flight()
    except Exception as error:      # a compute starts even then
        LOG.error('Korora: in-flight migrations not checked at start: %s',
                  error)
        return
    for record in found:
        try:
            resume(driver, record, host)
        except Exception as error:
            LOG.error('Korora: migration %s (%s) not resumed by %s: %s',
                      record.uuid, record.state, host, error)


def resume(driver, record, host):
    protocol = driver.korora_protocol()
    instance = driver.korora_instance(record.instance_uuid)
    LOG.info('Korora: migration %s of instance %s found %s after a '
             'restart of %s; Nova has the instance on %s', record.uuid,
             record.instance_uuid, record.state, host, instance.host)
    backend = driver.korora_state_backend()
    if instance.host != record.dest_host:
        if host == record.dest_host:
            commit.remove_arrived_copy(backend, record, host)
        commit.abort(protocol, record.uuid, 'found %s after a restart of %s '
                     'with the instance on %s' % (record.state, host,
                                                  instance.host))
        return
    action = states.RESUME[record.state]
    if action == states.FINISH and host == record.source_host:
        protocol.measure(record, None, False)
    elif action == states.VERIFY and host == record.dest_host:
        try:
            protocol.verify_arrival(record, None)
        except exception.Quarantined as failure:
            _quarantine(driver, instance, failure.record, host,
                        exception.IntegrityFailure(failure.item,
                                                   failure.reason))
    elif action == states.COMMIT and host == record.source_host:
        commit.commit(protocol, record, backend)
        driver.korora_undefine_source(instance)


def _quarantine(driver, instance, record, host, failure):
    error = arrival.quarantine(driver, instance, record, host, failure)
    instance.vm_state = vm_states.ERROR
    instance.save()
    compute_utils.add_instance_fault_from_exc(driver.korora_context(),
                                              instance, error)
