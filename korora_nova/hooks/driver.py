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
    destination  post_live_migration_at_destination  verify on arrival or
                                                     quarantine
    either       rollback_live_migration_at_*        abort, remove the
                                                     arrived copy

Every other method is the base driver's.
"""

import os

from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import importutils

from korora_nova import conf
from korora_nova.db import api as db
from korora_nova import exception
from korora_nova.hooks import arrival
from korora_nova.hooks import commit
from korora_nova.hooks import handover
from korora_nova.hooks import manifest
from korora_nova.hooks import precheck
from korora_nova.hooks import recovery
from korora_nova.hypervisors import libvirt_backend
from korora_nova.hypervisors import libvirt_migration
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.vtpm_manager import local_channel
from korora_nova.vtpm_manager import rpcapi

CONF = conf.CONF
LOG = logging.getLogger(__name__)


def _take_secret(data, *others):
    """The clear vTPM secret the base driver put into data, taken out of
    data and others (the same object, usually) at once, so that no
    failure path can publish it."""
    secret = None
    for obj in (data,) + others:
        if obj is not None and obj.obj_attr_is_set('vtpm_secret_value'):
            secret = secret or obj.vtpm_secret_value
            obj.vtpm_secret_value = None
    return secret


def _scrub_secret(*objs):
    """No vTPM secret (clear or sealed) in objs once a step failed."""
    for obj in objs:
        if obj is not None and obj.obj_attr_is_set('vtpm_secret_value'):
            obj.vtpm_secret_value = None


class LiveMigrationHooks:
    """Put before the base driver class; each hook calls the base's method.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Nova's harness runs several computes in one process and sets
        # CONF.host while each starts: keep ours.
        self.korora_host = CONF.host
        # instance uuid -> vTPM secret, while a migration needs it to
        # measure the (encrypted) vTPM state.
        self._korora_secrets = {}

    # What the hooks stand on; a test driver may replace them.

    def korora_state_backend(self):
        """This host's instance-state backend (korora_nova.hypervisors).
        Without one nothing can be measured, so every arrival fails its
        check: fail closed."""
        raise exception.ConfigurationError(
            'Korora has no instance-state backend for the compute driver '
            '%s' % type(self).__name__)

    def korora_manager_api(self):
        return rpcapi.VTPMManagerAPI()

    def korora_channel_key(self):
        return local_channel.load_key(CONF.korora.local_channel_key)

    def korora_context(self):
        return nova_context.get_admin_context()

    def korora_instance(self, instance_uuid):
        """Nova's instance record (its host is where Nova runs it)."""
        return objects.Instance.get_by_uuid(self.korora_context(),
                                            instance_uuid)

    def init_host(self, host):
        super().init_host(host)
        # A restarted compute finishes or rolls back what it left.
        recovery.resume_all(self, host)

    # 1. Mutual attestation; the destination opens the record.

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info,
                                           dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        applies = precheck.applies(instance)
        source = (src_compute_info or {}).get('host')
        destination = (dst_compute_info or {}).get('host') or self.korora_host
        if applies:
            verdict = precheck.attest_peer(instance, 'source', source)
        dest_check_data = super().check_can_live_migrate_destination(
            context, instance, src_compute_info, dst_compute_info,
            block_migration, disk_over_commit)
        if applies:
            try:
                record = precheck.request(instance, source, destination,
                                          verdict)
            except nova_exception.MigrationPreCheckError:
                raise
            except Exception as error:
                precheck.refuse(instance, 'the migration could not be '
                                'recorded: %s' % error)
            precheck.claim_destination(dest_check_data, instance,
                                       destination, record)
        return dest_check_data

    # 1-3. The source attests the destination, checks its key, seals.

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        if not precheck.applies(instance):
            return super().check_can_live_migrate_source(
                context, instance, dest_check_data, block_device_info)
        # A named host below microversion 2.30 (Horizon) never met the
        # scheduler: this is the check that refuses it.
        record = precheck.claimed_record(context, instance, dest_check_data,
                                         self.korora_host)
        try:
            return self._korora_source_checks(
                context, instance, dest_check_data, block_device_info,
                record)
        except precheck.Refused as error:
            with excutils.save_and_reraise_exception():
                self._korora_source_failed(instance, dest_check_data,
                                           record, error.korora_reason)
        except nova_exception.MigrationPreCheckError as error:
            with excutils.save_and_reraise_exception():
                self._korora_source_failed(instance, dest_check_data,
                                           record, str(error))
        except Exception as error:
            reason = 'the pre-checks failed: %s' % error
            self._korora_source_failed(instance, dest_check_data, record,
                                       reason)
            precheck.refuse(instance, reason)

    def _korora_source_failed(self, instance, dest_check_data, record,
                              reason):
        """Nova's wrap_exception publishes dest_check_data (which the base
        driver changed in place) in an error notification: scrub it before
        anything else, then abort the record."""
        _scrub_secret(dest_check_data)
        self._korora_secrets.pop(instance.uuid, None)
        commit.abort(record.uuid, self.korora_host, reason)

    def _korora_source_checks(self, context, instance, dest_check_data,
                              block_device_info, record):
        destination = record.dest_host
        verdict = precheck.attest_peer(instance, 'destination', destination)
        records.transition(
            record.uuid, self.korora_host, states.PEERS_ATTESTED,
            details={'source_nonce': verdict.attestation.extra_data.hex(),
                     'dest_verdict': verdict.summary()},
            expected=states.REQUESTED)
        data = super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info)
        # Out of every object Nova may serialize before anything can fail.
        secret = _take_secret(data, dest_check_data)
        try:
            self._korora_seal(instance, data, secret, destination, record)
        except Exception:
            with excutils.save_and_reraise_exception():
                _scrub_secret(data, dest_check_data)
        return data

    def _korora_seal(self, instance, data, secret, destination, record):
        """Check the stream and the destination's key, then put the
        sealed secret into data."""
        self._korora_check_stream(instance, data)
        nonce = os.urandom(handover.NONCE_SIZE)
        key = handover.certify_destination_key(
            self.korora_manager_api(), destination,
            db.host_get(destination).ak_public, nonce)
        if secret:
            data.vtpm_secret_value = handover.seal_secret(
                key, secret, handover.binding(record))
            self._korora_secrets[instance.uuid] = secret
        records.transition(
            record.uuid, self.korora_host, states.KEY_CERTIFIED,
            details={'key_certification': key.attestation,
                     'certify_nonce': nonce.hex(),
                     'secret_sealed': bool(secret)},
            expected=states.PEERS_ATTESTED)

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
        record = envelope = None
        try:
            record = self._korora_record(instance, states.KEY_CERTIFIED)
            if (migrate_data.obj_attr_is_set('vtpm_secret_value') and
                    migrate_data.vtpm_secret_value):
                envelope = migrate_data.vtpm_secret_value
                secret = handover.open_secret(
                    self.korora_manager_api(), self.korora_host,
                    self.korora_channel_key(), envelope,
                    handover.binding(record))
                migrate_data.vtpm_secret_value = secret
                self._korora_secrets[instance.uuid] = secret
            records.transition(
                record.uuid, self.korora_host, states.TRANSFERRING,
                details={'secret_opened': envelope is not None},
                expected=states.KEY_CERTIFIED)
        except Exception as error:
            # Nova's wrap_exception publishes migrate_data: never with the
            # opened secret.
            self._korora_restore_envelope(instance, migrate_data, envelope)
            if record is not None:
                commit.abort(record.uuid, self.korora_host,
                             'the destination could not open the sealed '
                             'vTPM secret: %s' % error)
            raise handover.SecretNotOpened(reason=error)
        try:
            result = super().pre_live_migration(
                context, instance, block_device_info, network_info,
                disk_info, migrate_data)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._korora_restore_envelope(instance, migrate_data,
                                              envelope)
        # The answer crosses the bus again: never with the secret.
        migrate_data.vtpm_secret_value = envelope
        if result is not None and result is not migrate_data and (
                result.obj_attr_is_set('vtpm_secret_value')):
            result.vtpm_secret_value = envelope
        return result

    def _korora_restore_envelope(self, instance, migrate_data, envelope):
        """After a failed pre_live_migration: the envelope back in
        migrate_data (the opened secret is forgotten)."""
        self._korora_secrets.pop(instance.uuid, None)
        if migrate_data.obj_attr_is_set('vtpm_secret_value'):
            migrate_data.vtpm_secret_value = envelope

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

        return super().live_migration(
            context, instance, dest, post_method_with_korora,
            recover_method, block_migration, migrate_data)

    def _korora_measure(self, instance, block_migration):
        """On the source: the manifest of what crossed. A failure is not
        raised: the guest is on the destination already, whose check
        then finds no manifest and quarantines it."""
        try:
            record = self._korora_record(instance, states.TRANSFERRING)
            manifest.measure_and_sign(
                record, self.korora_state_backend(),
                self.korora_manager_api(),
                self._korora_secrets.get(instance.uuid),
                bool(block_migration))
        except Exception as error:
            LOG.error('Korora: no integrity manifest for instance %s: %s',
                      instance.uuid, error)

    def _korora_commit(self, instance):
        """Returns the committed record, or None."""
        self._korora_secrets.pop(instance.uuid, None)
        try:
            record = self._korora_record(instance, states.VERIFIED)
            committed = commit.commit(record, self.korora_host,
                                      self.korora_state_backend(),
                                      self.korora_manager_api())
        except Exception as error:
            # Stays VERIFIED: the next start of this compute commits it.
            LOG.error('Korora: migration of instance %s not committed yet: '
                      '%s', instance.uuid, error)
            return None
        self.korora_undefine_source(instance)
        return committed

    def korora_undefine_source(self, instance):
        """After the commit: remove what the base driver kept of the
        instance on the source for Kororā (see the libvirt hooks)."""

    def korora_outgoing(self, instance_uuid):
        """True while a Kororā migration of the instance leaves this host
        (the source must keep its copy until the commit); also True when
        the records cannot be read: keeping a copy is the safe side."""
        try:
            return any(record.source_host == self.korora_host
                       for record in records.in_flight_for_instance(
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
        records_found = records.in_flight_for_instance(instance.uuid)
        secret = self._korora_secrets.pop(instance.uuid, None)
        record = records_found[-1] if records_found else None
        if record is None or record.dest_host != self.korora_host:
            arrival.quarantine(self, instance, None, self.korora_host,
                               arrival.IntegrityFailure(
                                   arrival.MANIFEST_ITEM,
                                   'no Korora migration of this instance '
                                   'to %s is in flight' % self.korora_host))
        try:
            checked = arrival.verify(record, self.korora_state_backend(),
                                     secret)
        except arrival.IntegrityFailure as failure:
            arrival.quarantine(self, instance, record, self.korora_host,
                               failure)
        except exception.KororaError as error:
            arrival.quarantine(self, instance, record, self.korora_host,
                               arrival.IntegrityFailure(
                                   arrival.MEASUREMENT_ITEM, str(error)))
        records.transition(record.uuid, self.korora_host, states.VERIFIED,
                           details={'items': dict(checked.items)},
                           expected=states.MEASURED)

    # Rollback: the instance stays on its source.

    def rollback_live_migration_at_source(self, context, instance,
                                          migrate_data):
        if precheck.applies(instance):
            self._korora_secrets.pop(instance.uuid, None)
            for record in records.in_flight_for_instance(instance.uuid):
                commit.abort(record.uuid, self.korora_host,
                             'Nova rolled the live migration back')
        return super().rollback_live_migration_at_source(
            context, instance, migrate_data)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        if precheck.applies(instance):
            self._korora_secrets.pop(instance.uuid, None)
            for record in records.in_flight_for_instance(instance.uuid):
                if record.dest_host == self.korora_host:
                    commit.remove_arrived_copy(self.korora_state_backend(),
                                               record, self.korora_host)
                    commit.abort(record.uuid, self.korora_host,
                                 'Nova rolled the live migration back')
        return super().rollback_live_migration_at_destination(
            context, instance, network_info, block_device_info,
            destroy_disks, migrate_data)

    def _korora_record(self, instance, state):
        """The instance's in-flight migration, which must be in state."""
        found = records.in_flight_for_instance(instance.uuid)
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
            precheck.refuse(instance, refusal)

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
    driver named by [korora] base_compute_driver, hooked."""
    base_class = importutils.import_class(
        'nova.virt.' + CONF.korora.base_compute_driver)
    return hooked(base_class)(virtapi, read_only)
