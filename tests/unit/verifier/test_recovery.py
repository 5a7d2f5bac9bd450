"""The verifier's own recovery: stale records that never got past
KEY_CERTIFIED are aborted (nothing had left the source), later ones are
reported, on a real SQLite database, by one worker or several at once.
"""

import datetime
import logging
import threading

import fixtures

from korora_nova import conf
from korora_nova.db import models
from korora_nova.demo import services
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova.verifier import manager
from korora_nova.verifier import migrations
from tests import base
from tests.fixtures import raw_sql

CONF = conf.CONF


class TestVerifierRecovery(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.VerifierDatabaseFixture())
        self.log = self.useFixture(fixtures.FakeLogger(
            name='korora_nova.verifier', level=logging.INFO))
        self.config.config(group='korora', stale_migration_age=600,
                           recovery_interval=60)
        self.steps = migrations.MigrationSteps(CONF, None, None, None)
        self.verifier = manager.Verifier(CONF, None, self.steps)

    def record_in(self, state, instance, age=900):
        """A record moved to state age seconds ago."""
        record = records.create(None, instance, 'compute-1', 'compute-2',
                                host='compute-2')
        for step in states.FORWARD[1:states.FORWARD.index(state) + 1]:
            record = records.transition(record.uuid, 'compute-1', step)
        with raw_sql.session() as session:
            row = session.get(models.Migration, record.uuid)
            row.updated_at -= datetime.timedelta(seconds=age)
        return records.get(record.uuid)

    def some_records(self):
        return {state: self.record_in(state, 'instance-%d' % number)
                for number, state in enumerate(
                    (states.REQUESTED, states.KEY_CERTIFIED,
                     states.TRANSFERRING, states.VERIFIED))}

    def state_of(self, record):
        return records.get(record.uuid).state

    def test_stale_records_before_the_transfer_are_aborted(self):
        found = self.some_records()
        aborted = self.verifier.recover_due()
        self.assertEqual(
            sorted([found[states.REQUESTED].uuid,
                    found[states.KEY_CERTIFIED].uuid]), sorted(aborted))
        for state in (states.REQUESTED, states.KEY_CERTIFIED):
            record = records.get(found[state].uuid)
            self.assertEqual(states.ABORTED, record.state)
            self.assertIn('no step for', record.reason)
            self.assertIn('after %s (verifier recovery)' % state,
                          record.reason)
            self.assertEqual('verifier',
                             records.history(record.uuid)[-1].host)
        # Only the computes know where these instances run: reported.
        for state in (states.TRANSFERRING, states.VERIFIED):
            self.assertEqual(state, self.state_of(found[state]))
            self.assertIn('migration %s of instance %s (compute-1 to '
                          'compute-2) has been %s for'
                          % (found[state].uuid, found[state].instance_uuid,
                             state), self.log.output)
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())

    def test_young_records_are_left_alone(self):
        self.config.config(group='korora', stale_migration_age=1000)
        found = self.some_records()
        self.assertEqual([], self.verifier.recover_due())
        for state, record in found.items():
            self.assertEqual(state, self.state_of(record))

    def test_a_round_waits_for_the_interval(self):
        self.verifier.recover_due()
        late = self.record_in(states.REQUESTED, 'instance-late')
        self.assertEqual([], self.verifier.recover_due())
        self.assertEqual(states.REQUESTED, self.state_of(late))

    def test_interval_zero_turns_it_off(self):
        self.config.config(group='korora', recovery_interval=0)
        record = self.record_in(states.REQUESTED, 'instance-0')
        self.assertEqual([], self.verifier.recover_due())
        self.assertEqual(states.REQUESTED, self.state_of(record))

    def test_workers_at_once_abort_each_record_once(self):
        stale = [self.record_in(states.PEERS_ATTESTED, 'instance-%d' % n)
                 for n in range(6)]
        aborted = []
        errors = []

        def worker():
            try:
                aborted.extend(self.steps.recover_stale())
            except Exception as error:
                errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual([], errors)
        self.assertEqual(sorted(record.uuid for record in stale),
                         sorted(aborted))
        for record in stale:
            moves = [entry.to_state for entry in
                     records.history(record.uuid)]
            self.assertEqual(1, moves.count(states.ABORTED))
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
