"""korora-verifier's worker processes sharing one PostgreSQL database:
each scheduled attestation is claimed by exactly one worker, and a
worker killed in the middle of a round loses no host.

Real: korora-verifier as the installed console script forking [korora]
verifier_workers workers, RabbitMQ, PostgreSQL, swtpm quotes signed by
each host's own AK. Simulated: the hosts' vTPM managers, a few pools of
them per process (tests/fixtures/simulated_hosts.py says how), each
quote answered after LATENCY seconds as a discrete TPM would.
"""

import collections
import os
import signal
import time

import fixtures
import sqlalchemy as sa
from testtools import content

from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova.db import models
from korora_nova.demo import services
from korora_nova.migration import audit
from tests import base
from tests.fixtures import daemons
from tests.fixtures import databases
from tests.fixtures import rabbitmq
from tests.fixtures import simulated_hosts

HOSTS = ['sim-%02d' % number for number in range(24)]
POOLS = 2
LATENCY = 0.4
WORKERS = 2
# Few in flight and small batches: a round lasts a few seconds, with
# verdicts written while others are still awaited.
IN_FLIGHT = 3
BATCH = 4
INTERVAL = 10
# A claim moves a host's turn one interval on: a host whose claim died
# with its worker is attested one interval late, its verdict then about
# two intervals old. trust_ttl above that keeps it trusted meanwhile.
TRUST_TTL = 3 * INTERVAL
WAIT = 90.0


def _children(pid):
    """The live processes whose parent is pid."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as stream:
                fields = stream.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != 'Z':
            found.append(int(entry))
    return sorted(found)


class VerifierWorkersTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.folder = self.useFixture(fixtures.TempDir()).path
        broker = self.useFixture(rabbitmq.RabbitMQFixture())
        database = self.useFixture(
            databases.DatabaseFixture(databases.POSTGRESQL))
        self.config.config(connection=database.url,
                           group='korora_database')
        self.addCleanup(db.dispose)
        migration.db_sync()
        keys = services.verifier_keys(self)
        operator = self.useFixture(services.OperatorKeyFixture(
            self.config.conf))
        self.log_path = os.path.join(self.folder, 'verifier.log')
        config = daemons.write_config(
            os.path.join(self.folder, 'korora.conf'), {
                'DEFAULT': {'transport_url': broker.url, 'host': 'verifier',
                            'log_file': self.log_path},
                'korora': {
                    'verifier_signing_key': keys.private_path,
                    'verifier_public_keys': keys.public_path,
                    'policy_signing_keys': operator.public_path,
                    'attestation_interval': INTERVAL,
                    'attestation_timeout': 10,
                    'trust_ttl': TRUST_TTL,
                    'verifier_workers': WORKERS,
                    'attestations_in_flight': IN_FLIGHT,
                    'verdict_batch_size': BATCH,
                    'audit_anchor_host': '',
                },
                'korora_database': {'connection': database.url},
            })
        self.pools = simulated_hosts.SimulatedPools(
            self.folder, config, HOSTS, POOLS, LATENCY)
        self.addCleanup(self.pools.stop)
        self.pools.start()
        self.pools.enroll(operator.key)
        self.addOnException(self._attach_log)
        self.verifier = self.useFixture(daemons.Daemon(
            'korora-verifier',
            [daemons.console_script('korora-verifier'), '--config-file',
             config], os.path.join(self.folder, 'verifier.out')))

    def _attach_log(self, exc_info):
        self.addDetail('verifier.log', content.text_content(
            rabbitmq.tail(self.log_path)))

    def _verdicts(self, since=None):
        """{host: [(created_at, trusted), ...]} oldest first."""
        query = sa.select(models.Verdict.host_name,
                          models.Verdict.created_at,
                          models.Verdict.trusted).order_by(
            models.Verdict.created_at)
        if since is not None:
            query = query.where(models.Verdict.created_at >= since)
        found = collections.defaultdict(list)
        with db.get_engine().connect() as connection:
            for host, created_at, trusted in connection.execute(query):
                found[host].append((created_at, trusted))
        return found

    def _wait_for(self, what, condition):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.25)
        self.fail('not within %d s: %s' % (WAIT, what))

    def _workers(self):
        return _children(self.verifier.process.pid)

    def _assert_one_claim_per_turn(self, verdicts):
        """Two verdicts of one host less than half an interval apart
        would mean two workers claimed the same turn."""
        for host, rows in verdicts.items():
            for (earlier, _), (later, _) in zip(rows, rows[1:]):
                self.assertGreater(
                    (later - earlier).total_seconds(), INTERVAL / 2,
                    '%s attested twice in one turn: %s and %s'
                    % (host, earlier, later))

    def test_each_turn_is_claimed_by_one_worker(self):
        workers = self._wait_for('%d workers forked' % WORKERS, lambda: (
            len(self._workers()) == WORKERS and self._workers()))
        verdicts = self._wait_for(
            'every host attested in three turns',
            lambda: (lambda found: all(len(found[host]) >= 3
                                       for host in HOSTS) and found)(
                self._verdicts()))

        self.assertEqual(set(HOSTS), set(verdicts))
        self.assertTrue(all(trusted for rows in verdicts.values()
                            for _, trusted in rows))
        self._assert_one_claim_per_turn(verdicts)
        # Both workers took turns: each logged verdicts under its pid.
        with open(self.log_path) as stream:
            pids = {int(line.split()[2]) for line in stream
                    if 'korora_nova.verifier.attestation' in line
                    and ': trusted' in line}
        self.assertEqual(set(workers), pids & set(workers))
        self.assertTrue(audit.verify().ok)

    def test_worker_killed_mid_round_loses_no_host(self):
        self._wait_for('%d workers forked' % WORKERS,
                       lambda: len(self._workers()) == WORKERS)
        # The first round: every host trusted once.
        self._wait_for('every host attested once', lambda: set(
            self._verdicts()) == set(HOSTS))
        # Every host due at once, then one worker killed as soon as the
        # round has written its first verdicts: it dies holding claims
        # and quotes not yet written.
        round_start = db.utcnow()
        with db.get_engine().begin() as connection:
            connection.execute(sa.update(models.Host).values(
                next_attestation_at=round_start))
        self._wait_for('the round under way',
                       lambda: self._verdicts(round_start))
        victim = self._workers()[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = db.utcnow()

        respawned = self._wait_for(
            'a worker forked again in place of %d' % victim, lambda: (
                len(self._workers()) == WORKERS
                and victim not in self._workers() and self._workers()))
        self.assertNotIn(victim, respawned)
        after = self._wait_for(
            'every host attested after the kill',
            lambda: (lambda found: set(found) == set(HOSTS) and found)(
                self._verdicts(round_start)))
        # The hosts whose claims died with the worker came back one
        # interval later, none while another worker held it.
        self.assertTrue(all(trusted for rows in after.values()
                            for _, trusted in rows))
        self._assert_one_claim_per_turn(self._verdicts(round_start))
        late = {host: (rows[0][0] - killed_at).total_seconds()
                for host, rows in after.items()
                if (rows[0][0] - killed_at).total_seconds() > INTERVAL / 2}
        # Else the worker died holding nothing, and this proved nothing.
        self.assertTrue(late, 'no host was claimed by the killed worker')
        self.assertLess(max(late.values()), INTERVAL + 20, late)
        # No host's trust went stale in between: each verdict came
        # within trust_ttl of the one before.
        for host, rows in self._verdicts().items():
            for (earlier, _), (later, _) in zip(rows, rows[1:]):
                self.assertLess((later - earlier).total_seconds(),
                                TRUST_TTL, host)
        # What the dead worker had half written left no gap in the log.
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
