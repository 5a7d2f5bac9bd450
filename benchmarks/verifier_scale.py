#!/usr/bin/env python3
"""Verifier scale-out: scheduled attestations per second of N simulated
hosts with 250 ms of TPM latency each, for 1, 2 and 4 worker processes
of the real korora-verifier on PostgreSQL.

Run by hand (it is not a test)::

    python benchmarks/verifier_scale.py                    # 10,000 hosts
    python benchmarks/verifier_scale.py --hosts 2000 --workers 1 2

What is real: RabbitMQ (a private node), PostgreSQL (a private server),
``korora-verifier`` itself (its own process, forking
[korora] verifier_workers workers as in production: claims, challenges
signed with its key, appraisal, batched verdicts with their audit
entries), the swtpm TPMs and every quote the verifier judges, and
oslo.messaging on both sides.

What is simulated, and how: tests/fixtures/simulated_hosts.py says it
(``--pools`` processes, each one swtpm answering for ``hosts / pools``
hosts, each host with an AK of its own, every attestation waiting
``--latency`` seconds, default 0.25, before its real quote; hosts
written straight to the database with placeholder EK fields).

Figures: for each worker count, the time from the verifier's start to
the last of the hosts' verdicts, the rate from the first verdict to the
last, the share of hosts trusted, and the CPU seconds each part used
(verifier, simulators, swtpm, broker, database). Baseline, in the same
run: the same signed challenges sent from this process by as many
threads as the verifier keeps in flight, with no appraisal and no
database: the rate at which this machine serves the simulated fleet.

Goal (issue 12): 10,000 hosts each attested within one 60 s interval,
that is at least 170 attestations/s. Exit status: 0 if met with some
worker count, 1 if missed, 2 if the set-up failed, 130 if interrupted.
"""

import argparse
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import machine  # benchmarks/machine.py, beside this script

GOAL_SECONDS = 60.0
GOAL_RATE = 170.0
POLL = 0.25
ROUND_TIMEOUT = 600.0


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=10000)
    parser.add_argument('--pools', type=int, default=4)
    parser.add_argument('--latency', type=float, default=0.25)
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2, 4])
    parser.add_argument('--in-flight', type=int, default=64)
    parser.add_argument('--baseline-seconds', type=float, default=10.0)
    return parser.parse_args(argv)


# The benchmark

class Bed:
    """The broker, the database, the keys, the simulators, the hosts."""

    def __init__(self, args, folder):
        self.args = args
        self.folder = folder
        self.simulated = None

    def start(self):
        os.environ['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = '1'
        import tests  # noqa: F401  (first: it decides the mode)
        from korora_nova.cmd import daemon  # noqa: F401
        from tests.fixtures import databases
        from tests.fixtures import rabbitmq

        self.broker = rabbitmq.RabbitMQFixture()
        self.broker.setUp()
        self.database = databases.DatabaseFixture(databases.POSTGRESQL)
        self.database.setUp()
        self._keys()
        self.config = self._write_config(workers=1)
        from korora_nova import conf
        conf.CONF(['--config-file', self.config], project='korora')
        from korora_nova.db import migration
        migration.db_sync()
        self._start_simulators()
        self.simulated.enroll(self.operator)

    def _keys(self):
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives import serialization
        from korora_nova.attestation import results

        self.signing_key = os.path.join(self.folder, 'verifier.pem')
        self.public_key = os.path.join(self.folder, 'verifier.pub.pem')
        results.write_public_key(
            results.generate_signing_key(self.signing_key), self.public_key)
        self.operator = ec.generate_private_key(ec.SECP256R1())
        self.operator_public = os.path.join(self.folder, 'operator.pub.pem')
        with open(self.operator_public, 'wb') as stream:
            stream.write(self.operator.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo))

    def _write_config(self, workers):
        path = os.path.join(self.folder, 'korora-%d.conf' % workers)
        with open(path, 'w') as stream:
            stream.write('\n'.join([
                '[DEFAULT]',
                'transport_url = %s' % self.broker.url,
                'host = verifier',
                'log_file = %s' % os.path.join(self.folder,
                                               'verifier-%d.log' % workers),
                '[korora]',
                'verifier_signing_key = %s' % self.signing_key,
                'verifier_public_keys = %s' % self.public_key,
                'policy_signing_keys = %s' % self.operator_public,
                'attestation_interval = 60',
                'verifier_workers = %d' % workers,
                'attestations_in_flight = %d' % self.args.in_flight,
                'audit_anchor_host = ',
                '[korora_database]',
                'connection = %s' % self.database.url,
                '']))
        return path

    def _start_simulators(self):
        from tests.fixtures import simulated_hosts
        names = ['sim-%05d' % i for i in range(self.args.hosts)]
        self.simulated = simulated_hosts.SimulatedPools(
            self.folder, self.config, names, self.args.pools,
            self.args.latency)
        self.simulated.start()
        self.pools = self.simulated.pools

    def pids(self):
        """{part: [pid, ...]} of what runs beside the verifier."""
        return dict(self.simulated.pids(), broker=[self.broker.pid],
                    database=[self.database_server_pid()])

    def database_server_pid(self):
        from tests.fixtures import databases
        return databases.shared_server(databases.POSTGRESQL).pid

    def stop(self):
        if self.simulated is not None:
            self.simulated.stop()
        for part in ('database', 'broker'):
            fixture = getattr(self, part, None)
            if fixture is not None:
                fixture.cleanUp()


def _cpu_seconds(pids):
    """CPU seconds of pids, their live descendants and the children they
    waited for (a database server's ended backends, say)."""
    pids = [found for pid in pids for found in _tree(pid)]
    ticks = os.sysconf('SC_CLK_TCK')
    total = 0.0
    for pid in pids:
        try:
            with open('/proc/%d/stat' % pid) as stream:
                fields = stream.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / ticks
    return total


def _tree(pid):
    """pid and its live descendants."""
    found = [pid]
    for child in os.listdir('/proc'):
        if not child.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % child) as stream:
                parent = int(stream.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.extend(_tree(int(child)))
    return found


def _make_all_due():
    import sqlalchemy as sa
    from korora_nova.db import api as db
    from korora_nova.db import models
    with db.get_engine().begin() as connection:
        connection.execute(sa.update(models.Host).values(
            next_attestation_at=db.utcnow() - __import__(
                'datetime').timedelta(seconds=1)))


def _verdicts_since(since):
    import sqlalchemy as sa
    from korora_nova.db import api as db
    from korora_nova.db import models
    trust = models.HostTrust
    with db.get_engine().connect() as connection:
        return connection.execute(sa.select(
            sa.func.count(), sa.func.sum(sa.case((trust.trusted, 1),
                                                 else_=0)),
            sa.func.min(trust.verified_at), sa.func.max(trust.verified_at))
            .where(trust.verified_at >= since)).one()


def measure_workers(bed, workers):
    """One scheduled round of every host by korora-verifier with workers
    processes; returns a dict of figures."""
    from korora_nova.db import api as db

    config = bed._write_config(workers)
    _make_all_due()
    since = db.utcnow().replace(microsecond=0)
    others = bed.pids()
    before = {part: _cpu_seconds(pids) for part, pids in others.items()}
    started = time.monotonic()
    verifier = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), 'korora-verifier'),
         '--config-file', config],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        count = trusted = 0
        seen_first = None
        while count < bed.args.hosts:
            if time.monotonic() - started > ROUND_TIMEOUT:
                break
            if verifier.poll() is not None:
                raise RuntimeError('korora-verifier ended (status %s): see '
                                   'its log in %s'
                                   % (verifier.returncode, bed.folder))
            time.sleep(POLL)
            count, trusted, first, last = _verdicts_since(since)
            if count and seen_first is None:
                seen_first = time.monotonic()
        finished = time.monotonic()
        verifier_cpu = _cpu_seconds([verifier.pid])
    finally:
        verifier.send_signal(signal.SIGTERM)
        try:
            verifier.wait(30)
        except subprocess.TimeoutExpired:
            verifier.kill()
            verifier.wait()
    cpu = {part: _cpu_seconds(pids) - before[part]
           for part, pids in others.items()}
    cpu['verifier'] = verifier_cpu
    return {'workers': workers, 'count': count, 'trusted': trusted or 0,
            'all_done': finished - started,
            'rate': count / max(finished - (seen_first or started), 1e-9),
            'start_up': (seen_first or finished) - started, 'cpu': cpu}


def measure_baseline(bed, threads, seconds):
    """Signed challenges straight to the simulators from threads, with no
    appraisal and no database: attestations/s the fleet is served at."""
    import itertools
    from korora_nova.attestation import results
    from korora_nova.rpcapi import vtpm_manager

    api = vtpm_manager.VTPMManagerAPI(results.SigningKey.load(
        bed.signing_key))
    hosts = itertools.cycle([h for pool in bed.pools for h in pool])
    lock = threading.Lock()
    done = [0]
    stop = time.monotonic() + seconds

    def run():
        while time.monotonic() < stop:
            with lock:
                host = next(hosts)
            api.attest(host, os.urandom(32))
            with lock:
                done[0] += 1

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(run) for _ in range(threads)]:
            future.result()
    return done[0] / (time.monotonic() - started)


def _report(result, baseline):
    cpu = result['cpu']
    total = sum(cpu.values())
    print('  %d worker%s: %5d hosts, all attested %5.1f s after start '
          '(first verdict at %.1f s), %6.1f attestations/s, %d trusted; '
          'ratio to baseline %.2f'
          % (result['workers'], '' if result['workers'] == 1 else 's',
             result['count'], result['all_done'], result['start_up'],
             result['rate'], result['trusted'], result['rate'] / baseline),
          flush=True)
    print('      CPU ms per attestation: %s; total %.1f'
          % (', '.join('%s %.1f' % (part, 1000 * seconds / max(
              result['count'], 1)) for part, seconds in sorted(cpu.items())),
             1000 * total / max(result['count'], 1)), flush=True)


def main(argv=None):
    args = _arguments(argv)
    machine.stop_on_signals()
    for name, value in (machine.python(), machine.cpu(),
                        ('oslo.messaging',
                         machine.package_version('oslo.messaging')),
                        ('tpm2-pytss', machine.package_version('tpm2-pytss')),
                        ('SQLAlchemy', machine.package_version('SQLAlchemy'))):
        print('%-15s %s' % (name + ':', value))
    folder = tempfile.mkdtemp(prefix='korora-bench-scale-')
    bed = Bed(args, folder)
    results_by_workers = []
    try:
        try:
            print('Setting up %d simulated hosts in %d pools (%.0f ms TPM '
                  'latency each) ...' % (args.hosts, args.pools,
                                         1000 * args.latency), flush=True)
            set_up = time.monotonic()
            bed.start()
            print('  ready in %.0f s' % (time.monotonic() - set_up),
                  flush=True)
        except Exception as error:
            print('set-up failed: %s (files in %s)' % (error, folder),
                  file=sys.stderr)
            return 2
        baseline = measure_baseline(bed, args.in_flight,
                                    args.baseline_seconds)
        print('Baseline: signed challenges from %d threads, no appraisal '
              'or database: %.1f attestations/s' % (args.in_flight, baseline),
              flush=True)
        print('korora-verifier, one scheduled round of every host '
              '(PostgreSQL, %d in flight per worker):' % args.in_flight,
              flush=True)
        for workers in args.workers:
            result = measure_workers(bed, workers)
            results_by_workers.append(result)
            _report(result, baseline)
        first = results_by_workers[0]
        for result in results_by_workers[1:]:
            print('  %d workers / %d: %.2f' % (
                result['workers'], first['workers'],
                result['rate'] / first['rate']))
    except KeyboardInterrupt:
        return 130
    finally:
        bed.stop()
    met = [r for r in results_by_workers
           if r['count'] == args.hosts and r['all_done'] <= GOAL_SECONDS
           and r['trusted'] == args.hosts]
    print('goal: every one of %d hosts attested (and trusted) within %.0f s '
          '(>= %.0f/s): %s' % (args.hosts, GOAL_SECONDS, GOAL_RATE,
                               'PASS with %s worker(s)' % ', '.join(
                                   str(r['workers']) for r in met)
                               if met else 'MISS'))
    shutil.rmtree(folder, ignore_errors=True)
    return 0 if met else 1


if __name__ == '__main__':
    sys.exit(main())
