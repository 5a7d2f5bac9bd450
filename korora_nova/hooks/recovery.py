"""What nova-compute does with the migrations that are stuck.

When it starts, and then every [korora] recovery_interval seconds, a
compute asks the verifier for the migrations it takes part in that are
not final, and Nova's own record decides where the instance lives: if
Nova still has it on the source, the migration is aborted and the
destination removes what it received; if Nova has it on the destination,
the protocol is carried forward with the same steps the live path runs
(korora_nova.hooks.protocol): the source measures what it kept, the
destination verifies (pausing the instance first, resuming it once
proven), the source commits. Either way the vTPM state ends up on
exactly one host, the one Nova runs the instance on.

The periodic rounds leave alone what may still be under way: a record
that moved less than [korora] recovery_age seconds ago, an instance a
Nova operation is working on (task_state set), and an instance whose
live migration this host is running. Every step is a move of the
verifier's record from the state read, so a round that races another
(or the live path) is refused by the verifier and changes nothing.
"""

from nova.compute import power_state
from nova.compute import utils as compute_utils
from nova.compute import vm_states
from nova import exception as nova_exception
from oslo_log import log as logging
from oslo_service import loopingcall

from korora_nova import conf
from korora_nova import exception
from korora_nova.hooks import arrival
from korora_nova.hooks import commit
from korora_nova.migration import states

CONF = conf.CONF
LOG = logging.getLogger(__name__)


def resume_all(driver, host):
    """At start: a round without the age rule (what this compute left is
    not under way any more). Instances Nova still works on are left to
    the periodic rounds: Nova resets a live migration a restart
    interrupted itself, after the driver's init_host. Never raises: a
    compute must start even if the verifier is down."""
    return run_round(driver, host, min_age=0, when='at start')


def start_periodic(driver, host):
    """The recovery rounds of host's driver, every [korora]
    recovery_interval seconds (None when 0); stop() it at clean-up."""
    interval = CONF.korora.recovery_interval
    if not interval:
        return None
    timer = loopingcall.FixedIntervalLoopingCall(run_round, driver, host)
    timer.start(interval=interval, initial_delay=interval,
                stop_on_exception=False)
    return timer


def run_round(driver, host, min_age=None, when='in a recovery round'):
    """One round over the records that have not moved for min_age
    seconds (default [korora] recovery_age); returns the uuids of the
    migrations acted on. Never raises."""
    if min_age is None:
        min_age = CONF.korora.recovery_age
    acted = []
    for record in _in_flight(driver, host, when):
        if record.age is not None and record.age < min_age:
            continue
        free, instance = _left_alone_by_all(driver, record)
        if not free:
            continue
        if _resume_quietly(driver, record, host, instance):
            acted.append(record.uuid)
    _remove_abandoned(driver, host)
    return acted


def _remove_abandoned(driver, host):
    """Remove what the transfers of migrations to host that were
    aborted elsewhere (a restarted source) left here, for instances Nova
    runs elsewhere and is not moving."""
    try:
        found = driver.korora_protocol().abandoned()
    except Exception as error:
        LOG.error('Korora: recovery: aborted migrations to %s not read: %s',
                  host, error)
        return
    for record in found:
        free, instance = _left_alone_by_all(driver, record)
        if not free or (instance is not None and instance.host == host):
            continue
        backend = driver.korora_state_backend()
        if backend.has_instance(record.instance_uuid):
            _log(record, 'with the instance on %s' % (
                instance.host if instance else 'no host'),
                'remove the copy its transfer left on %s' % host)
            commit.remove_arrived_copy(backend, record, host)


def _left_alone_by_all(driver, record):
    """(free, instance): free when neither this host's live-migration path
    nor a Nova operation works on record's instance (None when Nova has
    no such instance any more)."""
    if driver.korora_leaving(record.instance_uuid):
        return False, None
    try:
        instance = driver.korora_instance(record.instance_uuid)
    except nova_exception.InstanceNotFound:
        return True, None
    except Exception as error:
        LOG.error('Korora: recovery: instance %s of migration %s not read: '
                  '%s', record.instance_uuid, record.uuid, error)
        return False, None
    if instance.task_state is not None:
        LOG.debug('Korora: recovery: migration %s left alone: Nova is '
                  'working on instance %s (%s)', record.uuid, instance.uuid,
                  instance.task_state)
        return False, instance
    return True, instance


def _in_flight(driver, host, when):
    try:
        return driver.korora_protocol().in_flight()
    except Exception as error:      # never stops a compute
        LOG.error('Korora: in-flight migrations of %s not checked %s: %s',
                  host, when, error)
        return []


def _resume_quietly(driver, record, host, instance=None):
    try:
        return resume(driver, record, host, instance)
    except Exception as error:
        LOG.error('Korora: recovery: migration %s (%s) not resumed by %s: '
                  '%s', record.uuid, record.state, host, error)
        return False


def resume(driver, record, host, instance=None):
    """Carry record one step on, as this host's part; returns whether
    this host had a part to play."""
    protocol = driver.korora_protocol()
    if instance is None:
        try:
            instance = driver.korora_instance(record.instance_uuid)
        except nova_exception.InstanceNotFound:
            _log(record, 'found, but Nova has no such instance any more',
                 'abort')
            _abort(driver, protocol, record, host, 'its instance was '
                   'deleted')
            return True
    if instance.host != record.dest_host:
        _log(record, 'found with the instance on %s' % instance.host,
             'abort')
        _abort(driver, protocol, record, host, 'found %s by the recovery '
               'of %s with the instance on %s'
               % (record.state, host, instance.host))
        return True
    action = states.RESUME[record.state]
    secret = driver.korora_secret(record.instance_uuid)
    if action == states.FINISH and host == record.source_host:
        _log(record, 'with the instance on the destination', 'measure')
        protocol.measure(record, secret, False)
    elif action == states.VERIFY and host == record.dest_host:
        _log(record, 'with the instance here', 'pause, verify')
        _verify_held(driver, protocol, instance, record, host, secret)
    elif action == states.COMMIT and host == record.source_host:
        _log(record, 'verified on the destination', 'commit')
        commit.commit(protocol, record, driver.korora_state_backend())
        driver.korora_forget_secret(record.instance_uuid)
        driver.korora_undefine_source(instance)
    else:
        return False
    return True


def _log(record, found, action):
    LOG.info('Korora: recovery: migration %s of instance %s found %s %s: '
             '%s', record.uuid, record.instance_uuid, record.state, found,
             action)


def _abort(driver, protocol, record, host, reason):
    if host == record.dest_host:
        commit.remove_arrived_copy(driver.korora_state_backend(), record,
                                   host)
    driver.korora_forget_secret(record.instance_uuid)
    commit.abort(protocol, record.uuid, reason)


def _verify_held(driver, protocol, instance, record, host, secret):
    """The destination's check, with the guest paused: resumed when
    proven, quarantined when something changed, held otherwise."""
    try:
        driver.pause(instance)
    except Exception as error:      # paused already (held), say
        LOG.debug('Korora: instance %s not paused again: %s',
                  instance.uuid, error)
    try:
        protocol.verify_arrival(record, secret)
    except exception.Quarantined as failure:
        driver.korora_forget_secret(record.instance_uuid)
        _set_error(driver, instance, arrival.quarantine(
            driver, instance, failure.record, host,
            exception.IntegrityFailure(failure.item, failure.reason)))
        return
    except exception.KororaError as error:
        if instance.vm_state == vm_states.ERROR:
            # Held already: one fault and one notification per hold.
            LOG.warning('Korora: recovery: instance %s stays held on %s '
                        '(migration %s): %s', instance.uuid, host,
                        record.uuid, error)
            return
        _set_error(driver, instance, arrival.hold(driver, instance, record,
                                                  host, str(error)))
        return
    driver.korora_forget_secret(record.instance_uuid)
    driver.unpause(instance)
    instance.vm_state = vm_states.ACTIVE
    instance.power_state = power_state.RUNNING
    instance.save()
    LOG.info('Korora: recovery: instance %s proven unchanged on %s '
             '(migration %s): resumed', instance.uuid, host, record.uuid)


def _set_error(driver, instance, error):
    instance.vm_state = vm_states.ERROR
    instance.save()
    compute_utils.add_instance_fault_from_exc(driver.korora_context(),
                                              instance, error)
