"""Real Nova 34 services in-process, for korora-nova's functional tests.

``NovaVTPMTestBase`` starts Nova's API (through wsgi-intercept), conductor,
scheduler and several compute services in the test process, with Nova's
own Placement, Neutron, Glance and Cinder fixtures (Nova's functional test
harness, out of tree). Its computes run ``KororaVTPMFakeDriver``: Nova's
fake driver that also claims vTPM support, so vTPM flavors schedule and
live-migrate on them.

The importing module gets eventlet monkey patching, as Nova's own
functional tests do, unless ``OS_NOVA_DISABLE_EVENTLET_PATCHING`` is set
(native threading mode): importing ``nova.tests.functional`` decides, so it
is imported first here.
"""

# Nova's functional package monkey-patches on import (or, in threading
# mode, forbids eventlet): it must come before anything that imports
# urllib3 or oslo.context.
from nova.tests import functional as nova_functional  # noqa: F401

import contextlib
import logging
import os
import sys
import sysconfig
import time
import uuid

import fixtures
from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from novaclient import client as nova_client
import openstack.connection
import openstack.proxy
import os_traits

import nova.conf
from nova.compute import power_state
from nova.objects import migrate_data as migrate_data_obj
from nova.tests.functional import integrated_helpers
from nova.virt import fake
from nova.virt import hardware
from nova import vtpm

from korora_nova.hooks import driver as hooks_driver
from korora_nova.hypervisors import file_backend

# OpenStackSDKFixture (used by every Nova test) replaces this with a mock;
# the openstacksdk client below needs the real one.
_REAL_PROXY_GET_ENDPOINT = openstack.proxy.Proxy.get_endpoint

DRIVER_NAME = 'KororaVTPMFakeDriver'

#: What a libvirt compute with swtpm reports (Nova 34, default
#: [libvirt] supported_tpm_secret_security).
VTPM_TRAITS = (
    os_traits.COMPUTE_SECURITY_TPM_1_2,
    os_traits.COMPUTE_SECURITY_TPM_2_0,
    os_traits.COMPUTE_SECURITY_TPM_TIS,
    os_traits.COMPUTE_SECURITY_TPM_CRB,
    os_traits.COMPUTE_SECURITY_TPM_SECRET_SECURITY_USER,
    os_traits.COMPUTE_SECURITY_TPM_SECRET_SECURITY_HOST,
    os_traits.COMPUTE_SECURITY_TPM_SECRET_SECURITY_DEPLOYMENT,
)

#: Migration statuses after which nothing more happens.
FINAL_MIGRATION_STATUSES = ('completed', 'error', 'failed', 'cancelled')

#: Flavor extra specs of a live-migratable vTPM server.
VTPM_EXTRA_SPECS = {
    'hw:tpm_version': '2.0',
    'hw:tpm_model': 'tpm-crb',
    'hw:tpm_secret_security': 'host',
}


def api_paste_config():
    """The api-paste.ini installed with nova (``<prefix>/etc/nova``)."""
    prefixes = [sys.prefix, sysconfig.get_path('data'), sys.base_prefix]
    for prefix in prefixes:
        path = os.path.join(prefix, 'etc', 'nova', 'api-paste.ini')
        if os.path.exists(path):
            return path
    raise RuntimeError('api-paste.ini not found below %s: is nova installed '
                       'in this environment?' % ', '.join(prefixes))


def _has_vtpm(instance):
    return hardware.get_vtpm_constraint(
        instance.flavor, instance.image_meta) is not None


class KororaVTPMFakeDriver(fake.MediumFakeDriver):
    """Nova's MediumFakeDriver with vTPM support, libvirt-like.

    - reports ``supports_vtpm`` and the traits in ``vtpm_traits``, so
      Placement offers this host to vTPM flavors;
    - keeps a fake libvirt secret per vTPM guest (``vtpm_secrets``,
      instance uuid -> (secret uuid, passphrase)), created at spawn;
    - live migration moves the guest, as the libvirt driver does: for
      'host' secret security the source puts the secret into migrate_data
      (``vtpm_secret_uuid``/``vtpm_secret_value``) in
      ``check_can_live_migrate_source``, the destination defines it in
      ``pre_live_migration``, the source forgets guest and secret after
      success, the destination forgets the secret on rollback;
    - records every live-migration driver call in ``calls`` as
      (method name, instance uuid, migrate_data or None);
    - keeps each vTPM guest's files (vTPM state, NVRAM, domain XML) in a
      FileStateBackend folder of its host below ``state_root``; the live
      migration copies them to the destination's folder, through
      ``in_flight(name, data)`` if a test set one (to tamper with them);
      the source's copy goes with the guest after the transfer, as
      libvirt removes swtpm state when it undefines the domain, unless
      ``keep_source_copy`` (libvirt: VIR_DOMAIN_UNDEFINE_KEEP_TPM) leaves
      it for Korora's commit to remove.

    Nova loads it as ``compute_driver = 'fake.KororaVTPMFakeDriver'``
    once it is put into ``nova.virt.fake`` (``NovaVTPMTestBase`` does).
    """

    capabilities = dict(fake.MediumFakeDriver.capabilities,
                        supports_vtpm=True)
    vtpm_traits = VTPM_TRAITS
    #: Folder holding every fake host's instance files (set per test).
    state_root = None
    #: Keep the source's files after the transfer (see the docstring).
    keep_source_copy = False

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        self.vtpm_secrets = {}
        self.calls = []
        self.host_name = nova.conf.CONF.host
        self.in_flight = None

    def state_backend(self, host=None):
        """The FileStateBackend of host (this driver's host by default)."""
        return file_backend.FileStateBackend(self.state_root,
                                             host or self.host_name)

    def _record(self, name, instance, data=None):
        self.calls.append((name, instance.uuid, data))

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(provider_tree, nodename, allocations)
        provider_tree.add_traits(nodename, *self.vtpm_traits)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info=network_info,
                      block_device_info=block_device_info,
                      power_on=power_on, accel_info=accel_info)
        if _has_vtpm(instance) and instance.uuid not in self.vtpm_secrets:
            self.vtpm_secrets[instance.uuid] = (str(uuid.uuid4()),
                                                uuid.uuid4().hex)
            constraint = hardware.get_vtpm_constraint(instance.flavor,
                                                      image_meta)
            self.state_backend().create_instance(
                instance.uuid, vtpm_state=os.urandom(8192),
                nvram=os.urandom(4096), tpm_model=constraint.model,
                tpm_version=constraint.version,
                secret_uuid=self.vtpm_secrets[instance.uuid][0])

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        super().destroy(context, instance, network_info,
                        block_device_info=block_device_info,
                        destroy_disks=destroy_disks,
                        destroy_secrets=destroy_secrets)
        if destroy_secrets:
            self.vtpm_secrets.pop(instance.uuid, None)
        if destroy_disks:
            self.state_backend().remove_instance(instance.uuid)

    def pause(self, instance):
        # Nova's fake ignores pause; a quarantine must show.
        if instance.uuid in self.instances:
            self.instances[instance.uuid].state = power_state.PAUSED

    def unpause(self, instance):
        if instance.uuid in self.instances:
            self.instances[instance.uuid].state = power_state.RUNNING

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info, dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        data = super().check_can_live_migrate_destination(
            context, instance, src_compute_info, dst_compute_info,
            block_migration=block_migration,
            disk_over_commit=disk_over_commit)
        self._record('check_can_live_migrate_destination', instance, data)
        return data

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data, block_device_info=None):
        data = super().check_can_live_migrate_source(
            context, instance, dest_check_data,
            block_device_info=block_device_info)
        # As LibvirtDriver._add_vtpm_secret_to_live_migrate_data does.
        if _has_vtpm(instance):
            security = vtpm.get_instance_tpm_secret_security(instance.flavor)
            secret = self.vtpm_secrets.get(instance.uuid)
            if security == 'host' and secret:
                data.vtpm_secret_uuid = secret[0]
                data.vtpm_secret_value = secret[1]
            else:
                data.vtpm_secret_uuid = None
                data.vtpm_secret_value = None
        self._record('check_can_live_migrate_source', instance, data)
        return data

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        self._record('pre_live_migration', instance, migrate_data)
        if (isinstance(migrate_data,
                       migrate_data_obj.LibvirtLiveMigrateData) and
                migrate_data.has_vtpm_secret_data):
            self.vtpm_secrets[instance.uuid] = (
                migrate_data.vtpm_secret_uuid,
                migrate_data.vtpm_secret_value)
        return super().pre_live_migration(
            context, instance, block_device_info, network_info, disk_info,
            migrate_data)

    def live_migration(self, context, instance, dest,
                       post_method, recover_method, block_migration=False,
                       migrate_data=None):
        self._record('live_migration', instance, migrate_data)
        source = self.state_backend()
        if source.has_instance(instance.uuid):
            try:
                source.copy_instance(instance.uuid, self.state_backend(dest),
                                     in_flight=self.in_flight)
            except Exception:
                recover_method(context, instance, dest, migrate_data)
                return None
        return super().live_migration(
            context, instance, dest, post_method, recover_method,
            block_migration=block_migration, migrate_data=migrate_data)

    def post_live_migration(self, context, instance, block_device_info,
                            migrate_data=None):
        # Runs on the source: the guest has left this host.
        self._record('post_live_migration', instance, migrate_data)
        self.destroy(context, instance, network_info=None,
                     block_device_info=block_device_info,
                     destroy_disks=not self.keep_source_copy)

    def post_live_migration_at_source(self, context, instance, network_info):
        self._record('post_live_migration_at_source', instance)
        return super().post_live_migration_at_source(
            context, instance, network_info)

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        self._record('post_live_migration_at_destination', instance)
        return super().post_live_migration_at_destination(
            context, instance, network_info,
            block_migration=block_migration,
            block_device_info=block_device_info)

    def rollback_live_migration_at_source(self, context, instance,
                                          migrate_data):
        self._record('rollback_live_migration_at_source', instance,
                     migrate_data)
        return super().rollback_live_migration_at_source(
            context, instance, migrate_data)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        self._record('rollback_live_migration_at_destination', instance,
                     migrate_data)
        if instance.uuid not in self.instances:
            self.vtpm_secrets.pop(instance.uuid, None)
            self.state_backend().remove_instance(instance.uuid)
        return super().rollback_live_migration_at_destination(
            context, instance, network_info, block_device_info,
            destroy_disks=destroy_disks, migrate_data=migrate_data)

    def call_names(self, instance_uuid=None):
        """The names of the recorded calls (for one instance, if given)."""
        return [name for name, uuid_, _data in self.calls
                if instance_uuid in (None, uuid_)]


class KororaHookedFakeDriver(hooks_driver.hooked(KororaVTPMFakeDriver)):
    """KororaVTPMFakeDriver with Korora's live-migration hooks, on the
    fake hosts' instance files; each host reaches its own vTPM manager on
    the socket local_sockets names for it (set per test)."""

    keep_source_copy = True
    #: host -> the UNIX socket of its vTPM manager.
    local_sockets = {}

    def korora_state_backend(self):
        return self.state_backend()

    def korora_local_manager(self):
        from korora_nova.vtpm_manager import local_client

        path = self.local_sockets.get(self.korora_host, '/nonexistent')
        return local_client.LocalManager(
            path, nova.conf.CONF.korora.migration_step_timeout)


class NovaVTPMTestBase(integrated_helpers._IntegratedTestBase):
    """Nova 34 in-process, with vTPM-capable fake computes.

    Set in a subclass (all read before the services start):

    - ``COMPUTE_HOSTS``: the compute services' host names;
    - ``COMPUTE_DRIVER_CLASS``: the driver class (a KororaVTPMFakeDriver,
      usually);
    - ``SCHEDULER_FILTERS``: extra filter class paths (or override
      ``scheduler_filters()``), added to Nova's available and enabled
      filters;
    - ``configure_nova()``: a hook to set more options (``self.flags``).

    ``self.api`` is a project member, ``self.admin_api`` a project admin
    (Nova's test REST clients, microversion 'latest' by default);
    ``self.computes`` maps host names to the compute services.
    """

    COMPUTE_HOSTS = ('compute-1', 'compute-2', 'compute-3')
    COMPUTE_DRIVER_CLASS = KororaVTPMFakeDriver
    SCHEDULER_FILTERS = ()

    #: Default microversion of self.api and self.admin_api.
    microversion = 'latest'
    #: Real casts: the API answers before the conductor and computes work,
    #: as in a deployment (Nova's base turns casts into calls).
    CAST_AS_CALL = False
    #: How long the wait helpers wait (seconds) and how often they look.
    TIMEOUT = 60
    POLL_INTERVAL = 0.1

    def setUp(self):
        # Nova's executors log their shutdown at INFO after the test's log
        # capture has ended, onto the console: keep that quiet. The level
        # is raised by the first cleanup to run, restored by the last.
        pool_log = logging.getLogger('nova.thread_pool_factory')
        self.addCleanup(pool_log.setLevel, pool_log.level)
        super().setUp()
        self.addCleanup(pool_log.setLevel, logging.WARNING)
        self._vtpm_flavor = None

    # -- configuration, before the services start ------------------------

    @classmethod
    def scheduler_filters(cls):
        """Extra scheduler filter class paths ('package.module.Class')."""
        return list(cls.SCHEDULER_FILTERS)

    def configure_nova(self):
        """Hook: set more Nova options before any service starts."""

    def _configure_scheduler_filters(self):
        extra = self.scheduler_filters()
        group = nova.conf.CONF.filter_scheduler
        available = list(group.available_filters)
        if 'nova.scheduler.filters.all_filters' not in available:
            available.insert(0, 'nova.scheduler.filters.all_filters')
        enabled = list(group.enabled_filters)
        for path in extra:
            if path not in available:
                available.append(path)
            name = path.rsplit('.', 1)[-1]
            if name not in enabled:
                enabled.append(name)
        self.flags(available_filters=available, enabled_filters=enabled,
                   group='filter_scheduler')

    def _setup_services(self):
        self.flags(api_paste_config=api_paste_config(), group='wsgi')
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.fake.' + DRIVER_NAME, self.COMPUTE_DRIVER_CLASS))
        self.state_root = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MonkeyPatch(
            __name__ + '.KororaVTPMFakeDriver.state_root', self.state_root))
        self.flags(compute_driver='fake.' + DRIVER_NAME)
        self._configure_scheduler_filters()
        self.configure_nova()
        super()._setup_services()

    def _setup_compute_service(self):
        first = None
        for host in self.COMPUTE_HOSTS:
            compute = self._start_compute(host)
            first = first or compute
        return first

    def start_service(self, name, host=None, **kwargs):
        service = super().start_service(name, host=host, **kwargs)
        # Nova's harness kills its services at the end, which skips the
        # driver's clean-up: stop Kororā's recovery rounds here.
        driver = getattr(service.manager, 'driver', None)
        stop = getattr(driver, 'korora_stop_recovery', None)
        if stop is not None:
            self.addCleanup(stop)
        return service

    # -- access ----------------------------------------------------------

    def driver(self, host):
        """The virt driver of the compute service on host."""
        return self.computes[host].manager.driver

    @contextlib.contextmanager
    def microversion_of(self, api, microversion):
        """Use another microversion on one of Nova's test clients."""
        previous = api.microversion
        api.microversion = microversion
        try:
            yield api
        finally:
            api.microversion = previous

    def _auth_headers(self, admin):
        client = self.admin_api if admin else self.api
        return {'X-Auth-User': client.auth_user,
                'X-User-Id': client.auth_user,
                'X-Auth-Project-Id': client.project_id,
                'X-Roles': ','.join(client.roles)}

    def compute_endpoint(self):
        """The URL of Nova's API that novaclient and openstacksdk use."""
        return self.api_fixture.base_url

    def keystone_session(self, admin=True):
        """A keystoneauth1 session talking to the in-process API.

        No Keystone: the noauth plugin gives the endpoint, the headers
        carry the identity that Nova's stubbed keystone context reads.
        """
        return ks_session.Session(
            auth=noauth.NoAuth(endpoint=self.compute_endpoint()),
            additional_headers=self._auth_headers(admin))

    def novaclient(self, microversion='2.1', admin=True):
        """A python-novaclient Client on the in-process API."""
        return nova_client.Client(
            microversion, session=self.keystone_session(admin),
            endpoint_override=self.compute_endpoint())

    def sdk_connection(self, admin=True):
        """An openstacksdk Connection on the in-process API."""
        self.useFixture(fixtures.MonkeyPatch(
            'openstack.proxy.Proxy.get_endpoint', _REAL_PROXY_GET_ENDPOINT))
        return openstack.connection.Connection(
            session=self.keystone_session(admin),
            compute_endpoint_override=self.compute_endpoint(),
            compute_api_version='2')

    # -- flavors and servers ---------------------------------------------

    def create_vtpm_flavor(self, name=None, extra_specs=None, vcpus=1,
                           memory_mb=512, disk=1):
        """Create a vTPM flavor; return its id.

        extra_specs are added to (and override) VTPM_EXTRA_SPECS.
        """
        specs = dict(VTPM_EXTRA_SPECS, **(extra_specs or {}))
        return self._create_flavor(
            name=name or 'vtpm-' + uuid.uuid4().hex[:8], memory_mb=memory_mb,
            vcpu=vcpus, disk=disk, ephemeral=0, extra_spec=specs)

    def boot_server(self, flavor_id=None, name=None, host=None,
                    expected_status='ACTIVE'):
        """Boot a server with networks='none'; return it once in status.

        flavor_id defaults to a vTPM flavor (made once per test); host,
        if given, is requested at microversion 2.74 (still scheduled).
        """
        if flavor_id is None:
            if self._vtpm_flavor is None:
                self._vtpm_flavor = self.create_vtpm_flavor()
            flavor_id = self._vtpm_flavor
        image = self.glance.image1['id']
        request = self._build_server(name=name, image_uuid=image,
                                     flavor_id=flavor_id, networks='none',
                                     host=host)
        api = self.admin_api if host else self.api
        with self.microversion_of(api, 'latest'):
            server = api.post_server({'server': request})
        return self.wait_for_server(server, status=expected_status)

    def get_server(self, server, admin=True):
        """The server as the admin (default) or the member sees it."""
        api = self.admin_api if admin else self.api
        return api.get_server(_id(server))

    def server_host(self, server):
        """OS-EXT-SRV-ATTR:host of the server (admin view)."""
        return self.get_server(server)['OS-EXT-SRV-ATTR:host']

    def server_status(self, server):
        return self.get_server(server)['status']

    def server_fault(self, server, admin=False):
        """The server's fault (what the user sees by default), or None."""
        return self.get_server(server, admin=admin).get('fault')

    def wait_for_server(self, server, status='ACTIVE', task_state=None,
                        host=None, timeout=None):
        """Wait for status (and task_state, and host if given).

        Returns the server (admin view); fails the test on timeout, or
        when the server goes to ERROR unless ERROR was asked for.
        """
        def check():
            current = self.get_server(server)
            if (current['status'] == status and
                    current['OS-EXT-STS:task_state'] == task_state and
                    host in (None, current['OS-EXT-SRV-ATTR:host'])):
                if status != 'ERROR' or 'fault' in current:
                    return current
            if current['status'] == 'ERROR' and status != 'ERROR':
                self.fail('Server %s went to ERROR: %s' % (
                    current['id'], current.get('fault')))
            return None
        return self._poll(check, timeout, 'server %s to be %s/%s' % (
            _id(server), status, task_state))

    # -- migrations --------------------------------------------------------

    def migrations(self, server, migration_type='live-migration'):
        """The server's migrations (GET /os-migrations), oldest first."""
        with self.microversion_of(self.admin_api, 'latest'):
            found = self.admin_api.api_get(
                '/os-migrations?instance_uuid=%s' % _id(server)
            ).body['migrations']
        found = [m for m in found
                 if migration_type in (None, m.get('migration_type'))]
        return sorted(found, key=lambda m: m['id'])

    def latest_migration_id(self, server):
        """The id of the server's newest live migration, or 0."""
        found = self.migrations(server)
        return found[-1]['id'] if found else 0

    def wait_for_migration(self, server, statuses=FINAL_MIGRATION_STATUSES,
                           newer_than=0, timeout=None):
        """Wait for the server's newest live migration to be in statuses.

        Only migrations with an id above newer_than count. Once the
        migration is in a final status the server's task_state is back to
        None too. Returns the migration (dict of GET /os-migrations).
        """
        statuses = [s.lower() for s in statuses]

        def check():
            found = [m for m in self.migrations(server)
                     if m['id'] > newer_than]
            if found and found[-1]['status'].lower() in statuses:
                return found[-1]
            return None
        migration = self._poll(check, timeout, 'a migration of %s in %s' % (
            _id(server), statuses))
        if migration['status'] in FINAL_MIGRATION_STATUSES:
            self._poll(
                lambda: self.get_server(server)[
                    'OS-EXT-STS:task_state'] is None,
                timeout, 'server %s to finish migrating' % _id(server))
        return migration

    def _live_migrate(self, server, send, wait):
        marker = self.latest_migration_id(server)
        send()
        if not wait:
            return marker
        return self.wait_for_migration(server, newer_than=marker)

    def live_migrate_api(self, server, host=None, microversion='latest',
                         force=None, block_migration='auto', wait=True):
        """POST os-migrateLive as the admin at microversion.

        The body follows the microversion: below 2.25 block_migration and
        disk_over_commit are False; force is sent when not None (valid at
        2.30-2.67). With wait, returns the new migration once in a final
        status; without, the newest migration id before the request (give
        it as newer_than to wait_for_migration). API errors (synchronous
        below 2.34) raise nova's OpenStackApiException, with the status in
        .response.status_code.
        """
        body = {'host': host}
        if _older(microversion, '2.25'):
            body['block_migration'] = False
            body['disk_over_commit'] = False
        else:
            body['block_migration'] = block_migration
        if force is not None:
            body['force'] = force

        def send():
            with self.microversion_of(self.admin_api, microversion):
                self.admin_api.post_server_action(
                    _id(server), {'os-migrateLive': body})
        return self._live_migrate(server, send, wait)

    def live_migrate_novaclient(self, server, host=None, microversion='2.1',
                                wait=True):
        """novaclient servers.live_migrate, as Horizon (2.1) or the nova CLI.

        Returns as live_migrate_api; errors raise novaclient exceptions.
        """
        client = self.novaclient(microversion)

        def send():
            if _older(microversion, '2.25'):
                client.servers.live_migrate(_id(server), host, False, False)
            else:
                client.servers.live_migrate(_id(server), host, 'auto')
        return self._live_migrate(server, send, wait)

    def live_migrate_sdk(self, server, host=None, force=False, wait=True):
        """openstacksdk compute.live_migrate_server, as the openstack CLI.

        Returns as live_migrate_api; errors raise openstack exceptions.
        """
        connection = self.sdk_connection()

        def send():
            connection.compute.live_migrate_server(
                _id(server), host=host, force=force)
        return self._live_migrate(server, send, wait)

    # -- what the user sees ------------------------------------------------

    def instance_actions(self, server, admin=False):
        """The server's instance actions with their events, oldest first.

        Each is the os-instance-actions detail (action, message, events
        with their results; tracebacks and hosts only for the admin).
        """
        api = self.admin_api if admin else self.api
        with self.microversion_of(api, 'latest'):
            actions = api.get_instance_actions(_id(server))
            details = [api.get_instance_action_details(
                _id(server), action['request_id']) for action in actions]
        # The API lists the newest first.
        return list(reversed(details))

    def instance_action(self, server, action='live-migration', admin=False):
        """The newest instance action of that name, or None."""
        found = [a for a in self.instance_actions(server, admin=admin)
                 if a['action'] == action]
        return found[-1] if found else None

    def action_events(self, server, action='live-migration'):
        """(event, result, details) of the newest such action's events.

        As the admin sees them: details (the error message of a failed
        event) need the admin and microversion 2.84.
        """
        found = self.instance_action(server, action, admin=True)
        return [(event['event'], event['result'], event.get('details'))
                for event in (found or {}).get('events', [])]

    # -- internals ---------------------------------------------------------

    def _poll(self, check, timeout, what):
        deadline = time.monotonic() + (timeout or self.TIMEOUT)
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                self.fail('Timed out waiting for %s' % what)
            time.sleep(self.POLL_INTERVAL)


def _id(server):
    return server if isinstance(server, str) else server['id']


def _older(microversion, than):
    if microversion in (None, 'latest'):
        return microversion is None
    major, minor = (int(x) for x in microversion.split('.'))
    t_major, t_minor = (int(x) for x in than.split('.'))
    return (major, minor) < (t_major, t_minor)
