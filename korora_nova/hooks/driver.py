"""The compute driver korora runs: the configured base driver with the
live-migration hooks mixed in.

Which host runs which hook, in Nova's order::

    destination  check_can_live_migrate_destination  attest the source,
                                                     open the record
    source       check_can_live_migrate_source       attest the destination,
                                                     certified key, seal
                                                     the vTPM secret
    destination  pre_live_migration                  open the sealed secret
    source       live_migration                      the transfer; when it
                                                     ends: measure + sign,
                                                     Nova's post steps,
                                                     then commit
    destination  post_live_migration_at_destination  verify on arrival;
                                                     quarantine (evidence)
                                                     or hold paused (not
                                                     provable yet)
    either       rollback_live_migration_at_*        abort, remove the
                                                     arrived copy
    either       init_host, then every [korora]      recovery: finish or
                 recovery_interval                   roll back what is stuck

Every other method is the base driver's.
"""

from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import importutils

from korora_nova.attestation import results
from korora_nova import conf
from korora_nova import exception
from korora_nova.hooks import arrival
from korora_nova.hooks import commit
from korora_nova.hooks import handover
from korora_nova.hooks import precheck
from korora_nova.hooks import protocol as protocol_module
from korora_nova.hooks import recovery
from korora_nova.hypervisors import libvirt_backend
from korora_nova.hypervisors import libvirt_migration
from korora_nova.migration import states
from korora_nova.vtpm_manager import local_client

CONF = conf.CONF
LOG = logging.getLogger(__name__)

SECRET_FIELD = 'vtpm_secret_value'


class SecretNotOpened(nova_exception.NovaException):
    """What Nova records when the destination cannot take the secret."""
    msg_fmt = ('Korora: the destination could not take the vTPM secret: '
               '%(reason)s')


def take_secret(*objects_to_scrub):
    """The clear vTPM secret Nova's driver put into migrate data, taken
    out of every object given (Nova may serialize any of them into an
    RPC message or an error notification); None if there was none."""
    secret = None
    for data in objects_to_scrub:
        if data is not None and data.obj_attr_is_set(SECRET_FIELD):
            value = getattr(data, SECRET_FIELD)
            if value and not handover.is_sealed(value):
                secret = value
            delattr(data, SECRET_FIELD)
    return secret


class LiveMigrationHooks:
    """Put before the base driver class; each hook calls the base's method.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Nova's harness runs several computes in one process and sets
        # CONF.host while each starts: keep ours.
        self.korora_host = CONF.host
        # instance uuid -> vTPM secret, while a migration needs it to
        # measure the (encrypted) vTPM state: until the migration is
        # final here (recovery measures with it too).
        self._korora_secrets = {}
        self._korora_keys = None
        # Instances whose live migration runs from this host now:
        # recovery leaves them alone.
        self._korora_leaving = set()
        self._korora_recovery = None

    # What the hooks stand on; a test driver may replace them.

    def korora_state_backend(self):
        """This host's instance-state backend (korora_nova.hypervisors),
        for what nova-compute removes itself. Without one nothing can be
        removed: fail closed."""
        raise exception.ConfigurationError(
            'Korora has no instance-state backend for the compute driver '
            '%s' % type(self).__name__)

    def korora_local_manager(self):
        """This host's vTPM manager, on its root-only UNIX socket."""
        return local_client.LocalManager(CONF.korora.libvirt_hook_socket,
                                         CONF.korora.migration_step_timeout)

    def korora_protocol(self):
        """The steps of a migration as this host runs them (the pinned
        verifier keys are read once)."""
        if self._korora_keys is None:
            self._korora_keys = results.TrustedKeys.load(
                CONF.korora.verifier_public_keys)
        return protocol_module.for_host(self.korora_host, CONF,
                                        self._korora_keys,
                                        self.korora_local_manager())

    def korora_context(self):
        return nova_context.get_admin_context()

    def korora_instance(self, instance_uuid):
        """Nova's instance record (its host is where Nova runs it)."""
        return objects.Instance.get_by_uuid(self.korora_context(),
                                            instance_uuid)

    def korora_secret(self, instance_uuid):
        """The vTPM secret this host holds for the instance's migration
        (None after a restart)."""
        return self._korora_secrets.get(instance_uuid)

    def korora_forget_secret(self, instance_uuid):
        self._korora_secrets.pop(instance_uuid, None)

    def korora_leaving(self, instance_uuid):
        """True while this host's live-migration path moves the
        instance."""
        return instance_uuid in self._korora_leaving

    def init_host(self, host):
        super().init_host(host)
        # A restarted compute finishes or rolls back what it left, then
        # looks again every [korora] recovery_interval seconds.
        recovery.resume_all(self, host)
        self._korora_recovery = recovery.start_periodic(self, host)

    def cleanup_host(self, host):
        self.korora_stop_recovery()
        super().cleanup_host(host)

    def korora_stop_recovery(self):
        """Stop the recovery rounds (nova-compute's clean-up; a test
        harness that kills its services)."""
        if self._korora_recovery is not None:
            self._korora_recovery.stop()
            self._korora_recovery = None

    # 1. The verifier attests the source; the destination opens the record.

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info,
                                           dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        applies = precheck.applies(instance)
        source = (src_compute_info or {}).get('host')
        destination = (dst_compute_info or {}).get('host') or self.korora_host
        record = None
        if applies:
            if not source:
                raise precheck.refuse(instance, 'the source host of the '
                                      'migration is unknown')
            try:
                record = self.korora_protocol().request(instance.uuid,
                                                        source)
            except exception.KororaError as error:
                raise precheck.refuse(instance, str(error))
            LOG.info('Korora: source host %s of the live migration of %s '
                     'attested; migration %s', source, instance.uuid,
                     record.uuid)
        try:
            dest_check_data = super().check_can_live_migrate_destination(
                context, instance, src_compute_info, dst_compute_info,
                block_migration, disk_over_commit)
        except Exception as error:
            with excutils.save_and_reraise_exception():
                if record is not None:
                    commit.abort(self.korora_protocol(), record.uuid,
                                 'the destination\'s checks failed: %s'
                                 % error)
        if applies:
            precheck.claim_destination(dest_check_data, instance,
                                       destination, record)
        return dest_check_data

    # 2. The verifier attests the destination and certifies its key; the
    # source seals the vTPM secret to it.

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        if not precheck.applies(instance):
            return super().check_can_live_migrate_source(
                context, instance, dest_check_data, block_device_info)
        protocol = self.korora_protocol()
        # A named host below microversion 2.30 (Horizon) never met the
        # scheduler: this is the check that refuses it.
        record = precheck.claimed_record(context, instance, dest_check_data,
                                         protocol)
        try:
            return self._korora_source_checks(
                context, instance, dest_check_data, block_device_info,
                record)
        except nova_exception.MigrationPreCheckError as error:
            with excutils.save_and_reraise_exception():
                take_secret(dest_check_data)
                commit.abort(protocol, record.uuid,
                             getattr(error, 'korora_reason', str(error)))
        except Exception as error:
            take_secret(dest_check_data)
            reason = 'the pre-checks failed: %s' % error
            commit.abort(protocol, record.uuid, reason)
            raise precheck.refuse(instance, reason)

    def _korora_source_checks(self, context, instance, dest_check_data,
                              block_device_info, record):
        protocol = self.korora_protocol()
        try:
            record, key = protocol.attest_destination(record)
        except exception.StepRefused as error:
            raise precheck.refuse(instance, str(error))
        data = super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info)
        # Out of Nova's objects at once, before anything can raise: Nova
        # publishes a failed call's arguments in an error notification.
        secret = take_secret(data, dest_check_data)
        self._korora_check_stream(instance, data)
        if secret:
            data.vtpm_secret_value = protocol.seal(record, key, secret)
            self._korora_secrets[instance.uuid] = secret
        return data

    def _korora_check_stream(self, instance, data):
        """Refuse a migration plane Kororā does not accept (see the
        libvirt hooks)."""

    # 3. The destination opens the sealed secret.

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        if not precheck.applies(instance):
            return super().pre_live_migration(
                context, instance, block_device_info, network_info,
                disk_info, migrate_data)
        protocol = self.korora_protocol()
        envelope = (migrate_data.vtpm_secret_value
                    if migrate_data.obj_attr_is_set(SECRET_FIELD) else None)
        record = None
        try:
            record = self._korora_record(instance, states.KEY_CERTIFIED)
            record, secret = protocol.open_transfer(record, envelope or None)
        except Exception as error:
            if envelope is not None:
                migrate_data.vtpm_secret_value = envelope
            if record is not None:
                commit.abort(protocol, record.uuid,
                             'the destination could not open the sealed '
                             'vTPM secret: %s' % error)
            raise SecretNotOpened(reason=error)
        if secret is not None:
            migrate_data.vtpm_secret_value = secret
            self._korora_secrets[instance.uuid] = secret
        try:
            result = super().pre_live_migration(
                context, instance, block_device_info, network_info,
                disk_info, migrate_data)
        finally:
            # The answer crosses the bus again: never with the secret.
            if envelope is not None:
                migrate_data.vtpm_secret_value = envelope
        if result is not None and result is not migrate_data and (
                result.obj_attr_is_set(SECRET_FIELD)):
            result.vtpm_secret_value = envelope
        return result

    # 4-6. The transfer; when it ends: measure, Nova's post steps, commit.

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        if not precheck.applies(instance):
            return super().live_migration(
                context, instance, dest, post_method, recover_method,
                block_migration, migrate_data)

        def post_method_with_korora(*args, **kwargs):
            self._korora_measure(instance, block_migration)
            post_method(*args, **kwargs)
            self._korora_commit(instance)

        self._korora_leaving.add(instance.uuid)
        try:
            return super().live_migration(
                context, instance, dest, post_method_with_korora,
                recover_method, block_migration, migrate_data)
        finally:
            self._korora_leaving.discard(instance.uuid)

    def _korora_measure(self, instance, block_migration):
        """On the source: the manifest of what crossed. A failure is not
        raised: the guest is on the destination already, which holds it
        paused until recovery has this host measure what it kept."""
        try:
            record = self._korora_record(instance, states.TRANSFERRING)
            self.korora_protocol().measure(
                record, self.korora_secret(instance.uuid),
                bool(block_migration))
        except Exception as error:
            LOG.error('Korora: no integrity manifest for instance %s yet '
                      '(recovery measures again): %s', instance.uuid, error)

    def _korora_commit(self, instance):
        """Returns the committed record, or None."""
        try:
            record = self._korora_record(instance, states.VERIFIED)
            committed = commit.commit(self.korora_protocol(), record,
                                      self.korora_state_backend())
        except Exception as error:
            # Stays as it is: recovery commits it (or measures first).
            LOG.error('Korora: migration of instance %s not committed yet '
                      '(recovery finishes it): %s', instance.uuid, error)
            return None
        self.korora_forget_secret(instance.uuid)
        self.korora_undefine_source(instance)
        return committed

    def korora_undefine_source(self, instance):
        """After the commit: remove what the base driver kept of the
        instance on the source for Kororā (see the libvirt hooks)."""

    def korora_outgoing(self, instance_uuid):
        """True while a Kororā migration of the instance leaves this host
        (the source must keep its copy until the commit); also True when
        the verifier cannot tell: keeping a copy is the safe side."""
        try:
            return any(record.source_host == self.korora_host
                       for record in self.korora_protocol().in_flight(
                           instance_uuid))
        except Exception as error:
            LOG.error('Korora: cannot tell whether instance %s is leaving '
                      'this host, so its copy is kept: %s', instance_uuid,
                      error)
            return True

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        # The guest runs here already (libvirt resumed it when the
        # transfer ended); the base driver makes it this host's, then it
        # is checked, and paused if it fails.
        result = super().post_live_migration_at_destination(
            context, instance, network_info, block_migration,
            block_device_info)
        if precheck.applies(instance):
            self._korora_verify(instance)
            self._korora_release(instance)
        return result

    def _korora_release(self, instance):
        """The guest checked out: let it run (see the libvirt hooks)."""

    def _korora_verify(self, instance):
        """Verified, or raises: quarantined on evidence that something
        changed, held paused while the arrival cannot be proven yet."""
        protocol = self.korora_protocol()
        try:
            found = [record for record in protocol.in_flight(instance.uuid)
                     if record.dest_host == self.korora_host]
        except Exception as error:      # nothing runs unverified
            raise arrival.hold(self, instance, None, self.korora_host,
                               'the verifier\'s record of the migration '
                               'cannot be read: %s' % error)
        if not found:
            self.korora_forget_secret(instance.uuid)
            raise arrival.quarantine(
                self, instance, None, self.korora_host,
                exception.IntegrityFailure(
                    arrival.MANIFEST_ITEM, 'no Korora migration of this '
                    'instance to %s is in flight: the verifier ended it '
                    '(korora-manage migration list names it and why)'
                    % self.korora_host))
        record = found[-1]
        try:
            protocol.verify_arrival(record,
                                    self.korora_secret(instance.uuid))
        except exception.Quarantined as failure:
            self.korora_forget_secret(instance.uuid)
            raise arrival.quarantine(
                self, instance, failure.record, self.korora_host,
                exception.IntegrityFailure(failure.item, failure.reason))
        except Exception as error:      # nothing runs unverified
            raise arrival.hold(self, instance, record, self.korora_host,
                               str(error))
        self.korora_forget_secret(instance.uuid)

    # Rollback: the instance stays on its source.

    def rollback_live_migration_at_source(self, context, instance,
                                          migrate_data):
        if precheck.applies(instance):
            self.korora_forget_secret(instance.uuid)
            take_secret(migrate_data)
            for record in self._korora_in_flight(instance):
                commit.abort(self.korora_protocol(), record.uuid,
                             'Nova rolled the live migration back')
        return super().rollback_live_migration_at_source(
            context, instance, migrate_data)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        if precheck.applies(instance):
            self.korora_forget_secret(instance.uuid)
            for record in self._korora_in_flight(instance):
                if record.dest_host == self.korora_host:
                    commit.remove_arrived_copy(self.korora_state_backend(),
                                               record, self.korora_host)
                    commit.abort(self.korora_protocol(), record.uuid,
                                 'Nova rolled the live migration back')
        return super().rollback_live_migration_at_destination(
            context, instance, network_info, block_device_info,
            destroy_disks, migrate_data)

    def _korora_in_flight(self, instance):
        """The instance's migrations this host takes part in; none when
        the verifier cannot be asked (logged)."""
        try:
            return self.korora_protocol().in_flight(instance.uuid)
        except exception.KororaError as error:
            LOG.error('Korora: the migrations of instance %s cannot be read '
                      'from the verifier: %s', instance.uuid, error)
            return []

    def _korora_record(self, instance, state):
        """The instance's in-flight migration, which must be in state."""
        found = self.korora_protocol().in_flight(instance.uuid)
        if not found:
            raise exception.KororaError(
                'no Korora migration of instance %s is in flight'
                % instance.uuid)
        record = found[-1]
        if record.state != state:
            raise exception.KororaError(
                'Korora migration %s of instance %s is %s, not %s'
                % (record.uuid, instance.uuid, record.state, state))
        return record


class LibvirtLiveMigrationHooks(LiveMigrationHooks):
    """The hooks for Nova's libvirt driver (QEMU/KVM)."""

    def korora_state_backend(self):
        return libvirt_backend.LibvirtStateBackend(
            CONF.libvirt.connection_uri or libvirt_backend.DEFAULT_URI)

    def _parse_migration_flags(self):
        super()._parse_migration_flags()
        self._live_migration_flags = libvirt_migration.migration_flags(
            self._live_migration_flags, CONF.korora.verify_before_resume)
        self._block_migration_flags = libvirt_migration.migration_flags(
            self._block_migration_flags, CONF.korora.verify_before_resume)

    def _korora_check_stream(self, instance, data):
        block = data.obj_attr_is_set('block_migration') and (
            data.block_migration)
        flags = (self._block_migration_flags if block else
                 self._live_migration_flags)
        refusal = libvirt_migration.stream_refusal(
            flags, CONF.korora.allow_unencrypted_migration_stream)
        if refusal:
            raise precheck.refuse(instance, refusal)

    def _korora_release(self, instance):
        if CONF.korora.verify_before_resume:
            self._host.get_guest(instance).resume()

    # The source's copy: Nova's post-migration clean-up on the source runs
    # before it asks the destination to finish (and so before Kororā's
    # check there), and with unshared instance storage it undefines the
    # domain without VIR_DOMAIN_UNDEFINE_KEEP_TPM: libvirt would delete
    # the source's vTPM state and NVRAM while the arrival is unchecked.

    def _undefine_domain(self, instance, keep_vtpm=False, keep_nvram=False):
        if precheck.applies(instance) and self.korora_outgoing(instance.uuid):
            LOG.info('Korora: the domain of instance %s stays defined on '
                     '%s, with its vTPM state and NVRAM, until the '
                     'destination has checked the arrival', instance.uuid,
                     self.korora_host)
            return
        super()._undefine_domain(instance, keep_vtpm, keep_nvram)

    def korora_undefine_source(self, instance):
        """Undefine the instance's inactive domain on this host, if any
        (libvirt then deletes its NVRAM and what is left of its vTPM
        state)."""
        try:
            guest = self._host.get_guest(instance)
            if guest.is_active():
                LOG.error('Korora: instance %s is running on %s after its '
                          'migration committed; its domain is left as it is',
                          instance.uuid, self.korora_host)
                return
            guest.delete_configuration(keep_vtpm=False, keep_nvram=False)
        except nova_exception.InstanceNotFound:
            pass
        except Exception as error:
            LOG.error('Korora: the domain of instance %s was not undefined '
                      'on %s after the commit: %s', instance.uuid,
                      self.korora_host, error)


def hooked(base_class):
    """base_class with Kororā's live-migration hooks (the libvirt ones for
    Nova's libvirt driver)."""
    from nova.virt.libvirt import driver as libvirt_driver

    hooks = (LibvirtLiveMigrationHooks
             if issubclass(base_class, libvirt_driver.LibvirtDriver)
             else LiveMigrationHooks)
    return type('Korora' + base_class.__name__, (hooks, base_class), {})


def KororaDriver(virtapi, read_only=False):
    """What Nova loads for compute_driver = korora.KororaDriver: the
    driver named by [korora] base_compute_driver, hooked.

    nova-compute holds no [korora_database] credentials (a compute
    host's root must not reach a trust decision): a configured
    connection fails the driver's load, and the database stays off for
    the rest of the process, as Nova's own is.
    """
    from korora_nova.db import api as db

    try:
        db.refuse_configured_connection(CONF, 'nova-compute')
    except exception.ConfigurationError as error:
        LOG.error('Korora: cannot load the compute driver: %s', error)
        raise
    db.disable_db_access('nova-compute')
    base_class = importutils.import_class(
        'nova.virt.' + CONF.korora.base_compute_driver)
    return hooked(base_class)(virtapi, read_only)
