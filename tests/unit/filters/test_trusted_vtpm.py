"""TrustedVTPMFilter against a real SQLite verifier database.

Every test gets a database file of its own in its temporary folder,
brought to the latest schema with db_sync, and verdicts written with
record_verdict from real Verdict objects, as korora-verifier writes them.
Host states, flavors, images and request specs are Nova's own objects,
and the filter is driven the way nova-scheduler drives it: through Nova's
filter handler and host manager where that matters.
"""

# Importing Nova's unit test package applies Nova's eventlet monkey
# patching (unless OS_NOVA_DISABLE_EVENTLET_PATCHING is set), as for Nova's
# own unit tests: it comes first, before anything imports oslo.context.
from nova.tests.unit.scheduler import fakes

import datetime
import logging
import os
import threading
from unittest import mock

import fixtures
import oslo_messaging as messaging
from oslo_utils.fixture import uuidsentinel
import sqlalchemy
from sqlalchemy import event

from nova import objects
from nova.scheduler import filters as scheduler_filters
from nova.scheduler.filters import compute_filter
from nova.scheduler import host_manager

from korora_nova.attestation import verdict as verdict_module
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova.db import models
from korora_nova import filters as korora_filters
from korora_nova.filters import trusted_vtpm
from tests import base
from tests.fixtures import raw_sql

objects.register_all()

CONF = conf.CONF

VTPM_EXTRA_SPECS = {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb'}
VTPM_IMAGE_PROPERTIES = {'hw_tpm_version': '2.0', 'hw_tpm_model': 'tpm-crb'}
POLICY = 'fleet v3'
PCR_VALUE = '5a' * 32
REFUSED = 'not trusted vTPM destinations'
DETAIL = 'not a trusted vTPM destination'
FILTER_PATH = 'korora_nova.filters.TrustedVTPMFilter'


def request_spec(extra_specs=None, image_properties=None, hints=None,
                 **fields):
    """A RequestSpec as the scheduler receives it for a boot."""
    flavor = objects.Flavor(
        name='m1.test', flavorid='42', memory_mb=1024, vcpus=1, root_gb=1,
        ephemeral_gb=0, swap=0, extra_specs=dict(extra_specs or {}))
    image = objects.ImageMeta(
        name='cirros', properties=objects.ImageMetaProps(
            **(image_properties or {})))
    for name, default in (('num_instances', 1), ('ignore_hosts', None),
                          ('force_hosts', None), ('force_nodes', None),
                          ('requested_destination', None)):
        fields.setdefault(name, default)
    return objects.RequestSpec(
        flavor=flavor, image=image, instance_uuid=uuidsentinel.instance,
        scheduler_hints=dict(hints or {}), **fields)


def vtpm_spec(**fields):
    return request_spec(extra_specs=VTPM_EXTRA_SPECS, **fields)


def rebuild_spec(host):
    """What nova-api sends for a rebuild with a new image (see
    nova.compute.api.API.rebuild): the current host, forced, and the
    rebuild check type."""
    return vtpm_spec(hints={'_nova_check_type': ['rebuild']},
                     force_hosts=[host], force_nodes=['node1'])


def host_state(name):
    return fakes.FakeHostState(name, 'node1', {})


def trusted(host):
    return verdict_module.Verdict(True, True, (), host, POLICY)


def untrusted(host):
    reason = verdict_module.Reason(
        verdict_module.PCR_POLICY,
        '%s: PCR sha256:10 = %s: not allowed by policy %s'
        % (host, PCR_VALUE, POLICY))
    return verdict_module.Verdict(False, True, (reason,), host, POLICY)


def names(host_states):
    return [state.host for state in host_states]


class TrustedVTPMFilterTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.logger = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.use_database(os.path.join(self.folder, 'korora.sqlite'))
        self.addCleanup(db.dispose)
        migration.db_sync()
        self.filter = trusted_vtpm.TrustedVTPMFilter()

    def use_database(self, path):
        self.config.config(group='korora_database',
                           connection='sqlite:///' + path)

    def enroll(self, name):
        """An enrolled host for the filter to judge: the filter reads
        only trust, so its identity is a placeholder (the enrollment's
        own tests make real ones)."""
        with raw_sql.session() as session:
            if session.query(models.Host).filter_by(name=name).count():
                return
            placeholder = ('placeholder of %s' % name).encode()
            session.add(models.Host(
                name=name, ek_type='rsa2048', ek_certificate=placeholder,
                ek_certificate_sha256=name, ek_public=placeholder,
                ak_public=placeholder, ak_name=name,
                trust_on_first_use=False, enrolled_at=db.utcnow(),
                next_attestation_at=db.utcnow()))

    def record(self, verdict, age=None):
        """Store a verdict of an enrolled host; age (seconds) moves its
        time back."""
        self.enroll(verdict.host)
        db.record_verdict(verdict.host, verdict)
        if age is not None:
            when = db.utcnow() - datetime.timedelta(seconds=age)
            with raw_sql.session() as session:
                session.query(models.HostTrust).filter_by(
                    host_name=verdict.host).update({'verified_at': when})

    def fleet(self):
        """compute-1 trusted, compute-2 untrusted, compute-3 never
        attested, compute-4 trusted but stale."""
        self.record(trusted('compute-1'))
        self.record(untrusted('compute-2'))
        self.record(trusted('compute-4'), age=CONF.korora.trust_ttl + 60)
        return [host_state('compute-%d' % i) for i in range(1, 5)]

    def count_statements(self):
        """A list that grows by one per SQL statement on any engine of
        this process (the filter's has connections of its own)."""
        statements = []

        def before_cursor_execute(conn, cursor, statement, *args):
            statements.append(statement)

        engines = sqlalchemy.engine.Engine
        event.listen(engines, 'before_cursor_execute', before_cursor_execute)
        self.addCleanup(event.remove, engines, 'before_cursor_execute',
                        before_cursor_execute)
        return statements

    def filter_all(self, hosts, spec):
        return list(self.filter.filter_all(hosts, spec))

    def refused_lines(self, output=None):
        return [line for line in (output or self.logger.output).splitlines()
                if REFUSED in line]

    def assertRefused(self, host, reason):
        """The request's log line names the host and, in short, why it
        was refused."""
        [line] = self.refused_lines()
        self.assertIn('%s (%s' % (host, reason), line)


class VTPMRequestTestCase(TrustedVTPMFilterTestCase):
    """A vTPM request passes only fresh trusted hosts."""

    def test_vtpm_flavor_passes_only_fresh_trusted_hosts(self):
        hosts = self.fleet()

        self.assertEqual(['compute-1'],
                         names(self.filter_all(hosts, vtpm_spec())))

    def test_vtpm_image_passes_only_fresh_trusted_hosts(self):
        hosts = self.fleet()
        spec = request_spec(image_properties=VTPM_IMAGE_PROPERTIES)

        self.assertEqual(['compute-1'], names(self.filter_all(hosts, spec)))

    def test_vtpm_image_with_a_version_only(self):
        # The model defaults to TIS: still a vTPM.
        hosts = self.fleet()
        spec = request_spec(image_properties={'hw_tpm_version': '2.0'})

        self.assertEqual(['compute-1'], names(self.filter_all(hosts, spec)))

    def test_trusted_host_passes(self):
        self.record(trusted('compute-1'))

        self.assertTrue(self.filter.host_passes(host_state('compute-1'),
                                                vtpm_spec()))
        self.assertNotIn('compute-1', self.logger.output)

    def test_untrusted_host_is_refused_with_the_verdict(self):
        self.record(untrusted('compute-2'))

        self.assertEqual([], self.filter_all([host_state('compute-2')],
                                             vtpm_spec()))
        self.assertRefused(
            'compute-2', 'untrusted: PCR sha256:10 = %s: not allowed by '
            'policy %s)' % (PCR_VALUE, POLICY))

    def test_unknown_host_is_refused(self):
        self.record(trusted('compute-1'))

        self.assertFalse(self.filter.host_passes(host_state('compute-3'),
                                                 vtpm_spec()))
        self.assertRefused('compute-3', 'no verdict: not enrolled?)')

    def test_stale_trusted_host_is_refused(self):
        self.record(trusted('compute-4'), age=CONF.korora.trust_ttl + 60)

        self.assertEqual([], self.filter_all([host_state('compute-4')],
                                             vtpm_spec()))
        self.assertRefused('compute-4', 'last verdict ')
        self.assertIn('older than trust_ttl %d s: is korora-verifier '
                      'running?)' % CONF.korora.trust_ttl,
                      self.logger.output)

    def test_stale_verdict_names_its_time(self):
        self.record(trusted('compute-4'), age=CONF.korora.trust_ttl + 60)
        with raw_sql.session() as session:
            verified_at = session.get(models.HostTrust,
                                      'compute-4').verified_at

        self.filter_all([host_state('compute-4')], vtpm_spec())

        self.assertRefused('compute-4', 'last verdict %s older'
                           % verified_at.isoformat(timespec='seconds'))

    def test_trust_ttl_is_read_from_the_configuration(self):
        self.flags(trust_ttl=600)
        self.record(trusted('compute-4'), age=400)
        hosts = [host_state('compute-4')]

        self.assertEqual(['compute-4'],
                         names(self.filter_all(hosts, vtpm_spec())))
        self.flags(trust_ttl=300)
        self.assertEqual([], self.filter_all(hosts, vtpm_spec()))

    def test_verdict_goes_stale_with_time(self):
        # No clock tricks: a fresh verdict, then a one-second trust_ttl
        # and a real wait (a busy machine may take more than a second
        # between recording and the first check, so that one has room).
        self.flags(trust_ttl=60)
        self.record(trusted('compute-1'))
        hosts = [host_state('compute-1')]
        self.assertEqual(['compute-1'],
                         names(self.filter_all(hosts, vtpm_spec())))
        self.flags(trust_ttl=1)

        deadline = db.utcnow() + datetime.timedelta(seconds=10)
        while self.filter_all(hosts, vtpm_spec()):
            self.assertLess(db.utcnow(), deadline)
            threading.Event().wait(0.1)
        self.assertIn('compute-1 (last verdict ',
                      self.refused_lines()[-1])

    def test_a_new_trusted_verdict_brings_a_host_back(self):
        self.record(untrusted('compute-2'))
        hosts = [host_state('compute-2')]
        self.assertEqual([], self.filter_all(hosts, vtpm_spec()))

        self.record(trusted('compute-2'))

        self.assertEqual(['compute-2'],
                         names(self.filter_all(hosts, vtpm_spec())))

    def test_a_new_untrusted_verdict_removes_a_host(self):
        self.record(trusted('compute-1'))
        hosts = [host_state('compute-1')]
        self.assertEqual(['compute-1'],
                         names(self.filter_all(hosts, vtpm_spec())))

        self.record(untrusted('compute-1'))

        self.assertEqual([], self.filter_all(hosts, vtpm_spec()))

    def test_optional_extra_spec_does_not_exempt_a_vtpm_flavor(self):
        hosts = self.fleet()
        spec = request_spec(extra_specs=dict(
            VTPM_EXTRA_SPECS, **{'korora:trusted_host': 'optional'}))

        self.assertEqual(['compute-1'], names(self.filter_all(hosts, spec)))

    def test_one_line_per_request_names_the_refused_hosts(self):
        hosts = self.fleet()
        with raw_sql.session() as session:
            stale = session.get(models.HostTrust, 'compute-4').verified_at

        self.filter_all(hosts, vtpm_spec())

        self.assertEqual(
            ['TrustedVTPMFilter: 3 of 4 hosts are not trusted vTPM '
             'destinations: compute-2 (untrusted: PCR sha256:10 = %s: not '
             'allowed by policy %s), compute-3 (no verdict: not enrolled?), '
             'compute-4 (last verdict %s older than trust_ttl %d s: is '
             'korora-verifier running?)'
             % (PCR_VALUE, POLICY, stale.isoformat(timespec='seconds'),
                CONF.korora.trust_ttl)],
            self.refused_lines())
        # The per-host detail is not at INFO.
        self.assertNotIn(DETAIL, self.logger.output)

    def test_every_reason_in_full_at_debug(self):
        hosts = self.fleet()
        debug = self.useFixture(fixtures.FakeLogger(
            name=trusted_vtpm.__name__, level=logging.DEBUG))

        self.filter_all(hosts, vtpm_spec())

        self.assertIn('compute-2: %s: untrusted: compute-2: PCR sha256:10 = '
                      '%s: not allowed by policy %s'
                      % (DETAIL, PCR_VALUE, POLICY), debug.output)
        self.assertIn('compute-3: %s: no verdict (is the host enrolled with '
                      'korora-verifier?)' % DETAIL, debug.output)
        self.assertIn('compute-4: %s: last verdict of ' % DETAIL,
                      debug.output)
        self.assertIn('is older than trust_ttl (%d s): is korora-verifier '
                      'running?' % CONF.korora.trust_ttl, debug.output)
        self.assertEqual(1, len(self.refused_lines(debug.output)))

    def test_the_line_names_twenty_hosts_and_counts_the_rest(self):
        self.record(trusted('compute-0'))
        hosts = [host_state('compute-%d' % i) for i in range(26)]

        self.assertEqual(['compute-0'],
                         names(self.filter_all(hosts, vtpm_spec())))

        [line] = self.refused_lines()
        self.assertIn('25 of 26 hosts are not trusted vTPM destinations: '
                      'compute-1 (no verdict: not enrolled?), ', line)
        self.assertIn(', compute-20 (no verdict: not enrolled?); and 5 more',
                      line)
        self.assertTrue(line.endswith('; and 5 more'), line)
        self.assertNotIn('compute-21', line)

    def test_a_long_verdict_is_cut_in_the_line(self):
        reasons = tuple(verdict_module.Reason(
            verdict_module.PCR_POLICY,
            'compute-2: PCR sha256:%d = %s: not allowed by policy %s'
            % (index, PCR_VALUE, POLICY)) for index in range(8))
        self.record(verdict_module.Verdict(False, True, reasons,
                                           'compute-2', POLICY))

        self.filter_all([host_state('compute-2')], vtpm_spec())

        [line] = self.refused_lines()
        reason = line.split('compute-2 (untrusted: ', 1)[1]
        self.assertTrue(reason.startswith('PCR sha256:0 = %s' % PCR_VALUE),
                        reason)
        self.assertEqual(trusted_vtpm.MAX_REASON + 1, len(reason))
        self.assertTrue(reason.endswith('...)'), reason)


class WhichRequestsTestCase(TrustedVTPMFilterTestCase):
    """Which requests the filter applies to."""

    def test_non_vtpm_flavor_passes_every_host(self):
        hosts = self.fleet()
        statements = self.count_statements()

        self.assertEqual(names(hosts),
                         names(self.filter_all(hosts, request_spec())))
        self.assertEqual([], statements)
        self.assertNotIn(REFUSED, self.logger.output)

    def test_optional_extra_spec_on_a_non_vtpm_flavor(self):
        hosts = self.fleet()
        spec = request_spec(extra_specs={'korora:trusted_host': 'optional'})

        self.assertEqual(names(hosts), names(self.filter_all(hosts, spec)))

    def test_required_extra_spec_applies_to_a_non_vtpm_flavor(self):
        hosts = self.fleet()
        spec = request_spec(extra_specs={'korora:trusted_host': 'required'})

        self.assertEqual(['compute-1'], names(self.filter_all(hosts, spec)))
        self.assertRefused('compute-3', 'no verdict')

    def test_enforce_for_all_instances(self):
        self.flags(enforce_for_all_instances=True)
        hosts = self.fleet()

        self.assertEqual(['compute-1'],
                         names(self.filter_all(hosts, request_spec())))
        self.assertRefused('compute-2', 'untrusted: ')

    def test_enforce_for_all_instances_overrides_optional(self):
        self.flags(enforce_for_all_instances=True)
        hosts = self.fleet()
        spec = request_spec(extra_specs={'korora:trusted_host': 'optional'})

        self.assertEqual(['compute-1'], names(self.filter_all(hosts, spec)))

    def test_rebuild_is_not_filtered(self):
        # RUN_ON_REBUILD = False: a rebuild stays on its host whatever the
        # host's verdict, as for Nova's own filters (BaseHostFilter's
        # _filter_one skips them on a rebuild).
        self.assertFalse(self.filter.RUN_ON_REBUILD)
        hosts = self.fleet()
        spec = vtpm_spec(hints={'_nova_check_type': ['rebuild']})

        self.assertEqual(names(hosts), names(self.filter_all(hosts, spec)))

    def test_rebuild_check_type_is_what_nova_reads(self):
        # The request the rebuild tests build is one Nova calls a rebuild.
        from nova.scheduler import utils as scheduler_utils

        self.assertTrue(scheduler_utils.request_is_rebuild(
            rebuild_spec('compute-2')))
        self.assertFalse(scheduler_utils.request_is_rebuild(vtpm_spec()))


class DatabaseTestCase(TrustedVTPMFilterTestCase):
    """The database: one query per request; unreadable means untrusted."""

    def test_one_query_per_request_whatever_the_number_of_hosts(self):
        self.record(trusted('compute-1'))
        few = [host_state('compute-1')]
        many = [host_state('compute-%d' % i) for i in range(1, 501)]
        for i in range(2, 51):
            self.record(trusted('compute-%d' % i))
        statements = self.count_statements()

        self.assertEqual(1, len(self.filter_all(few, vtpm_spec())))
        one_host = list(statements)
        del statements[:]
        self.assertEqual(50, len(self.filter_all(many, vtpm_spec())))
        five_hundred_hosts = list(statements)

        self.assertEqual(one_host, five_hundred_hosts)
        [query] = one_host
        self.assertIn('FROM host_trust', query)
        self.assertNotIn('WHERE', query)

    def test_every_request_reads_the_database_again(self):
        # No cache: a verdict is used by the very next request.
        self.record(trusted('compute-1'))
        statements = self.count_statements()

        for _ in range(3):
            self.filter_all([host_state('compute-1')], vtpm_spec())

        self.assertEqual(3, len([s for s in statements
                                 if 'FROM host_trust' in s]))

    def test_unreachable_database_passes_no_host(self):
        self.fleet()
        path = os.path.join(self.folder, 'missing', 'korora.sqlite')
        self.use_database(path)

        self.assertEqual([], self.filter_all(
            [host_state('compute-1'), host_state('compute-3')], vtpm_spec()))
        self.assertIn('TrustedVTPMFilter: the verifier database cannot be '
                      'read', self.logger.output)
        self.assertIn(path, self.logger.output)
        self.assertIn('no host is trusted', self.logger.output)
        self.assertFalse(os.path.exists(os.path.dirname(path)))

    def test_a_replaced_database_file_is_noticed_at_once(self):
        self.record(trusted('compute-1'))
        hosts = [host_state('compute-1')]
        self.assertEqual(['compute-1'],
                         names(self.filter_all(hosts, vtpm_spec())))
        path = os.path.join(self.folder, 'korora.sqlite')
        os.replace(path, path + '.moved')
        with open(path, 'wb') as stream:
            stream.write(b'not a database\n' * 512)

        self.assertEqual([], self.filter_all(hosts, vtpm_spec()))
        self.assertIn('TrustedVTPMFilter: the verifier database cannot be '
                      'read', self.logger.output)
        self.assertIn('file is not a database', self.logger.output)

    def test_database_never_synced_passes_no_host(self):
        self.use_database(os.path.join(self.folder, 'empty.sqlite'))

        self.assertEqual([], self.filter_all([host_state('compute-1')],
                                             vtpm_spec()))
        self.assertIn('the verifier database cannot be read',
                      self.logger.output)
        self.assertIn('no such table: host_trust', self.logger.output)

    def test_unreachable_database_does_not_matter_without_vtpm(self):
        self.use_database(os.path.join(self.folder, 'missing', 'k.sqlite'))
        hosts = [host_state('compute-1')]

        self.assertEqual(['compute-1'],
                         names(self.filter_all(hosts, request_spec())))
        self.assertNotIn('cannot be read', self.logger.output)

    def test_database_back_again(self):
        self.record(trusted('compute-1'))
        good = CONF.korora_database.connection
        hosts = [host_state('compute-1')]
        self.use_database(os.path.join(self.folder, 'missing', 'k.sqlite'))
        self.assertEqual([], self.filter_all(hosts, vtpm_spec()))

        self.config.config(group='korora_database', connection=good)

        self.assertEqual(['compute-1'],
                         names(self.filter_all(hosts, vtpm_spec())))

    def test_forged_trust_notification_does_not_make_a_host_pass(self):
        # The filter reads the verifier's database only: a
        # korora.host.trust.update notification saying "trusted", as the
        # verifier announces trust changes, is delivered on the bus but
        # changes nothing for the filter.
        self.record(untrusted('compute-2'))
        transport = messaging.get_notification_transport(CONF,
                                                         url='fake:/')
        self.addCleanup(transport.cleanup)
        received = []
        delivered = threading.Event()

        class Endpoint:
            def info(self, ctxt, publisher_id, event_type, payload,
                     metadata):
                received.append((event_type, payload))
                delivered.set()

        listener = messaging.get_notification_listener(
            transport, [messaging.Target(topic='notifications')],
            [Endpoint()], executor='threading')
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        notifier = messaging.Notifier(transport, 'korora-verifier.forged',
                                      driver='messaging',
                                      topics=['notifications'])
        forged = {'host': 'compute-3', 'trusted': True,
                  'summary': 'compute-3: trusted under policy ' + POLICY,
                  'reasons': [], 'policy': POLICY,
                  'verified_at': db.utcnow().isoformat()}
        for host in ('compute-2', 'compute-3'):
            delivered.clear()
            notifier.info({}, 'korora.host.trust.update',
                          dict(forged, host=host))
            self.assertTrue(delivered.wait(10))

        self.assertEqual(['compute-2', 'compute-3'],
                         [payload['host'] for _, payload in received])
        self.assertEqual([], self.filter_all(
            [host_state('compute-2'), host_state('compute-3')], vtpm_spec()))
        self.assertRefused('compute-2', 'untrusted: ')
        self.assertRefused('compute-3', 'no verdict')


class NovaSchedulerTestCase(TrustedVTPMFilterTestCase):
    """Driven as nova-scheduler drives it."""

    def handler(self):
        return scheduler_filters.HostFilterHandler()

    def test_loaded_from_the_documented_path(self):
        classes = self.handler().get_matching_classes([FILTER_PATH])

        self.assertEqual([trusted_vtpm.TrustedVTPMFilter], classes)
        self.assertIs(trusted_vtpm.TrustedVTPMFilter,
                      korora_filters.TrustedVTPMFilter)

    def test_handler_calls_filter_all_once(self):
        hosts = self.fleet()
        with mock.patch.object(
                self.filter, 'filter_all',
                wraps=self.filter.filter_all) as filter_all, \
                mock.patch.object(self.filter, 'host_passes') as host_passes:
            result = self.handler().get_filtered_objects(
                [self.filter], hosts, vtpm_spec())

        self.assertEqual(['compute-1'], names(result))
        filter_all.assert_called_once_with(hosts, mock.ANY)
        host_passes.assert_not_called()

    def test_filter_runs_once_per_request(self):
        # For the second and later instances of a multi-instance request
        # the scheduler filters the hosts left by the first one again:
        # this filter is then skipped, and the database not read.
        self.assertTrue(self.filter.run_filter_once_per_request)
        hosts = self.fleet()
        spec = vtpm_spec(num_instances=3)
        statements = self.count_statements()
        handler = self.handler()

        first = handler.get_filtered_objects([self.filter], hosts, spec,
                                             index=0)
        self.assertEqual(['compute-1'], names(first))
        read = len(statements)
        self.assertNotEqual(0, read)
        for index in (1, 2):
            self.assertEqual(names(hosts), names(
                handler.get_filtered_objects([self.filter], hosts, spec,
                                             index=index)))
        self.assertEqual(read, len(statements))

    def test_no_trusted_host_ends_the_filtering(self):
        self.record(untrusted('compute-2'))

        result = self.handler().get_filtered_objects(
            [self.filter], [host_state('compute-2')], vtpm_spec())

        self.assertEqual([], result)
        self.assertIn('Filter TrustedVTPMFilter returned 0 hosts',
                      self.logger.output)

    def host_manager(self):
        self.config.config(
            group='filter_scheduler',
            available_filters=['nova.scheduler.filters.all_filters',
                               FILTER_PATH],
            enabled_filters=['ComputeFilter', 'TrustedVTPMFilter'])
        with mock.patch.object(host_manager.HostManager,
                               'refresh_cells_caches'), \
                mock.patch.object(host_manager.HostManager,
                                  '_init_aggregates'), \
                mock.patch.object(host_manager.HostManager,
                                  '_init_instance_info'):
            return host_manager.HostManager()

    def up_hosts(self, hosts):
        now = datetime.datetime.now(datetime.timezone.utc)
        for state in hosts:
            state.service = {'disabled': False, 'forced_down': False,
                             'host': state.host, 'binary': 'nova-compute',
                             'created_at': now, 'last_seen_up': now}
        return hosts

    def test_host_manager_with_compute_filter(self):
        manager = self.host_manager()
        self.assertEqual(
            [compute_filter.ComputeFilter, trusted_vtpm.TrustedVTPMFilter],
            [type(f) for f in manager.enabled_filters])
        hosts = self.up_hosts(self.fleet())

        self.assertEqual(['compute-1'], names(
            manager.get_filtered_hosts(hosts, vtpm_spec())))
        self.assertEqual(names(hosts), names(
            manager.get_filtered_hosts(hosts, request_spec())))

    def test_host_manager_rebuild_on_an_untrusted_host(self):
        # nova-api asks the scheduler to check the current host of a
        # rebuild with a new image; filters with RUN_ON_REBUILD = False,
        # ComputeFilter and this one, must not refuse it.
        manager = self.host_manager()
        hosts = self.up_hosts(self.fleet())

        for host in ('compute-2', 'compute-3', 'compute-4'):
            self.assertEqual([host], names(
                manager.get_filtered_hosts(hosts, rebuild_spec(host))))
        self.assertNotIn(REFUSED, self.logger.output)
