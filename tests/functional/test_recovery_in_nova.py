"""A step that could not run is retried, then held, then recovered.

Nova 34's services with Kororā's hooked fake computes, as in
test_live_migration_hooks_in_nova; each host's vTPM manager answers on
its own socket. A manager "down" is the hooked driver finding no
manager on its socket (the socket path points nowhere while the fault
lasts), as nova-compute sees a manager that is restarting; the fault
injection tests (test_fault_injection) kill real daemons.

What an operator should see, per doc/source/admin/live-migration.rst
("When something fails"): a short fault is retried and leaves no trace
but a warning; a longer one holds the instance paused on the
destination (ERROR, fault "Korora holds ..."), never quarantined, and
recovery proves and resumes it with the vTPM state on one host.
"""

import threading

from oslo_messaging.notify import _impl_test as test_notifier

from korora_nova.demo import nova_cloud
from korora_nova.hypervisors import file_backend
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from tests.functional import test_live_migration_hooks_in_nova as base

SOURCE = base.SOURCE
DEST = base.DEST
RUNNING = 1
PAUSED = 3


class RecoveryTestBase(base.KororaMigrationTestBase):

    def configure_nova(self):
        super().configure_nova()
        # Rounds every second, on records of any age: the test waits for
        # what recovery does, not for the clock.
        self.flags(step_retries=2, step_retry_interval=0.05,
                   step_retry_max_interval=0.1, recovery_interval=1,
                   recovery_age=0, group='korora')

    def setUp(self):
        super().setUp()
        sockets = nova_cloud.KororaHookedFakeDriver.local_sockets
        self.real_sockets = dict(sockets)
        self.addCleanup(sockets.update, self.real_sockets)

    def manager_down(self, host):
        nova_cloud.KororaHookedFakeDriver.local_sockets[host] = (
            '/nonexistent/korora-%s.sock' % host)

    def manager_up(self, host):
        nova_cloud.KororaHookedFakeDriver.local_sockets[host] = (
            self.real_sockets[host])

    def during_transfer(self, action):
        """Run action() once, while the source sends the instance's
        files (the record is TRANSFERRING)."""
        done = []

        def in_flight(file_name, data):
            if not done:
                done.append(file_name)
                action()
            return data
        self.driver(SOURCE).in_flight = in_flight

    def held_notifications(self):
        return [message['payload']
                for _ctxt, message, priority, _retry
                in test_notifier.NOTIFICATIONS
                if message['event_type'] == 'korora.migration.held']

    def steps_and_hosts(self, record):
        return [(entry.to_state, entry.host)
                for entry in records.history(record.uuid)]

    def assert_one_copy_running_on_dest(self):
        record = self.wait_for_final_record()
        self.assertEqual(states.COMMITTED, record.state)
        server = self.wait_for_server(self.server, 'ACTIVE', host=DEST)
        self.assertEqual(RUNNING, server['OS-EXT-STS:power_state'])
        self.assertEqual([DEST], self.hosts_with_state())
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        return record, server

    def assert_held(self, reason):
        """The instance is paused on the destination, in ERROR with the
        hold as its fault, the record still in flight, both copies
        kept."""
        server = self.wait_for_server(self.server, 'ERROR')
        self.assertEqual(DEST, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(PAUSED, server['OS-EXT-STS:power_state'])
        fault = self.server_fault(self.server, admin=True)
        self.assertIn('Korora holds the instance paused on %s until its '
                      'migration is proven' % DEST, fault['message'])
        self.assertIn(reason, fault['message'])
        self.assertEqual([], self.integrity_notifications())
        held = self.held_notifications()
        self.assertEqual([self.server['id']],
                         [n['instance_uuid'] for n in held])
        self.assertEqual([SOURCE, DEST], self.hosts_with_state())


class TestShortFaultsAreRetried(RecoveryTestBase):

    def configure_nova(self):
        super().configure_nova()
        # No recovery round: the retries alone must carry it.
        self.flags(step_retries=6, step_retry_interval=0.2,
                   step_retry_max_interval=0.4, recovery_age=3600,
                   group='korora')

    def test_a_source_manager_back_within_the_retries(self):
        def blip():
            self.manager_down(SOURCE)
            threading.Timer(0.5, self.manager_up, (SOURCE,)).start()
        self.during_transfer(blip)
        migration = self.live_migrate_api(self.server, host=DEST)
        self.assertEqual('completed', migration['status'])
        record, server = self.assert_one_copy_running_on_dest()
        self.assertEqual(list(states.FORWARD),
                         [step for step, _ in self.steps_and_hosts(record)])
        self.assertEqual([], self.held_notifications())
        self.assertIn('Korora: vTPM manager call sign_manifest on %s could '
                      'not run (try 1 of 7)' % SOURCE,
                      self.stdlog.logger.output)


class TestHeldThenRecovered(RecoveryTestBase):

    def test_source_manager_down_through_the_measure(self):
        # The case: the source could not measure. Before, the
        # destination found no manifest and quarantined the instance
        # for good.
        self.during_transfer(lambda: self.manager_down(SOURCE))
        self.live_migrate_api(self.server, host=DEST)
        self.assert_held('%s has signed no integrity manifest' % SOURCE)
        self.assertEqual(states.TRANSFERRING, self.korora_record().state)
        self.assertEqual(PAUSED, self.driver(DEST).instances[
            self.server['id']].state)

        self.manager_up(SOURCE)
        record, server = self.assert_one_copy_running_on_dest()
        # The source measured what it kept, the destination verified and
        # resumed, the source committed: each in a recovery round.
        self.assertEqual(
            [(states.MEASURED, SOURCE), (states.VERIFIED, DEST),
             (states.COMMITTED, SOURCE)],
            self.steps_and_hosts(record)[-3:])
        self.assertIn('Korora: recovery: instance %s proven unchanged on '
                      '%s' % (self.server['id'], DEST),
                      self.stdlog.logger.output)
        self.assertEqual(self.secret,
                         self.driver(DEST).vtpm_secrets[self.server['id']])

    def test_destination_manager_down_through_the_check(self):
        self.during_transfer(lambda: self.manager_down(DEST))
        self.live_migrate_api(self.server, host=DEST)
        self.assert_held('vTPM manager of this host cannot be reached')
        self.assertEqual(states.MEASURED, self.korora_record().state)

        self.manager_up(DEST)
        record, _ = self.assert_one_copy_running_on_dest()
        self.assertEqual(
            [(states.VERIFIED, DEST), (states.COMMITTED, SOURCE)],
            self.steps_and_hosts(record)[-2:])

    def test_a_change_found_by_recovery_still_quarantines(self):
        # Held for a fault, then the check finds the vTPM state changed
        # on the destination meanwhile: evidence, so quarantined.
        self.during_transfer(lambda: self.manager_down(DEST))
        self.live_migrate_api(self.server, host=DEST)
        self.assert_held('cannot be reached')
        with open(self.path(DEST, file_backend.STATE_FILE), 'ab') as state:
            state.write(b'\0')
        self.manager_up(DEST)
        record = self.wait_for_final_record()
        self.assertEqual(states.QUARANTINED, record.state)
        self.assertIn('vtpm-state', record.reason)
        server = self.wait_for_server(self.server, 'ERROR')
        self.assertEqual(PAUSED, server['OS-EXT-STS:power_state'])
        self.assertIn('Korora quarantined the instance on %s' % DEST,
                      self.server_fault(self.server, admin=True)['message'])
        self.assertEqual([SOURCE, DEST], self.hosts_with_state())
