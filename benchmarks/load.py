#!/usr/bin/env python3
"""Load: N concurrent live migrations through Nova's services, and M
concurrent attestations, on real software TPMs and a real broker.

Run by hand (it is not a test)::

    python benchmarks/load.py [--migrations 10,50] [--attestations 100]
                              [--hosts H] [--poll S] [--timeout S]

Each part runs in a child process of its own (Nova's functional harness
monkey-patches the process for eventlet, the attestation fleet runs on
native threads), each with its own rabbitmq-server node
(tests.fixtures.rabbitmq) and its own SQLite verifier database on disk.

migrations
    korora-demo's cloud (korora_nova.demo.cloud): Nova 34's own API,
    conductor, scheduler and three computes in this process (Nova's
    functional harness, eventlet), every service on the RabbitMQ node
    (tests.fixtures.nova_rabbitmq), each compute host with its own swtpm
    and vTPM manager, enrolled and trusted, the verifier's endpoint
    (VerifierFixture) the only writer of its database. Started twice in
    the same run: Kororā off (PlainCloud: the plain vTPM fake driver) as
    the baseline, then on (KororaCloud: the hooked driver and
    TrustedVTPMFilter). In each, max(N) vTPM servers boot spread over
    the three hosts; then, for each N, the first N servers are
    live-migrated at once (POST os-migrateLive from N threads, each
    naming the next host), the same N migrations in both clouds. A
    migration's time runs from just before its API call until Nova's
    migration record reads 'completed' and, with Kororā on, Kororā's
    record reads COMMITTED, both looked at from outside every --poll
    seconds (a time is late by up to one interval). After the run with
    Kororā on: the audit chain verified (korora_nova.migration.audit,
    what ``korora-manage audit verify`` runs), and every migration's
    record COMMITTED.
attestations
    The fleet of benchmarks/verifier.py (benchmarks/fleet.py): H hosts
    (default 10), each its own swtpm and vTPM manager, and the verifier,
    over the RabbitMQ node. M attestations (default 100), the hosts in
    turn (M/H per host), each ``attest_host`` called over the broker
    (the verifier's RPC API, as korora-manage and Nova's side call it):
    first one at a time (the baseline), then all M at once from M
    threads. Then the audit chain verified: every verdict is an entry.
    This part runs on native threads, as the daemons do.

Printed for each batch: errors (count and distinct reasons; goal 0),
throughput (per second, from the first call to the last finished),
p50 and p99 of the latencies (nearest rank: of 10, p99 is the slowest),
and the ratios against the baseline. Exit status: 0 when no batch had an
error and the audit chain is intact, 1 otherwise, 2 if a set-up failed,
130 if interrupted. The services' logs go to a file whose path is
printed.
"""

import argparse
import collections
import concurrent.futures
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import machine  # benchmarks/machine.py, beside this script

PARTS = ('migrations', 'attestations')
OFF, ON = 'OFF', 'ON'
FINAL = ('completed', 'error', 'failed', 'cancelled')
#: The flavor's memory: max(N) servers and the N arriving ones fit on the
#: fake hosts (8 GiB each, RAM allocation ratio 1.0).
SERVER_MEMORY_MB = 64


def _counts(text):
    try:
        counts = [int(part) for part in text.split(',') if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError('a list of numbers: 10,50')
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError('numbers of at least 1')
    return counts


def _arguments(argv):
    parser = argparse.ArgumentParser(
        description='N concurrent live migrations (Kororā off and on) and '
                    'M concurrent attestations, on real swtpm and '
                    'RabbitMQ.')
    parser.add_argument('--migrations', type=_counts, default=[10, 50],
                        metavar='N[,N...]',
                        help='concurrent live migrations, one batch each '
                             '(default: 10,50)')
    parser.add_argument('--attestations', type=int, default=100,
                        metavar='M',
                        help='concurrent attestations (default: '
                             '%(default)s)')
    parser.add_argument('--hosts', type=int, default=10, metavar='H',
                        help='hosts of the attestation fleet, each with '
                             'its own swtpm and vTPM manager (default: '
                             '%(default)s)')
    parser.add_argument('--poll', type=float, default=0.05, metavar='S',
                        help='seconds between two looks at the migration '
                             'records (default: %(default)s)')
    parser.add_argument('--timeout', type=float, default=600.0,
                        metavar='S',
                        help='give up on a batch after S seconds '
                             '(default: %(default)s)')
    parser.add_argument('--log', metavar='PATH',
                        help='file for the services\' logs (default: a new '
                             'korora-bench-load-*.log in the temporary '
                             'folder, kept)')
    parser.add_argument('--part', choices=PARTS,
                        help='run only this part, in this process')
    args = parser.parse_args(argv)
    if args.attestations < 1 or args.hosts < 1:
        parser.error('--attestations and --hosts must be at least 1')
    if not 0 < args.poll <= 1 or args.timeout <= 0:
        parser.error('--poll must be above 0 and at most 1, --timeout '
                     'above 0')
    return args


def _versions():
    return [
        machine.python(),
        ('nova', machine.package_version('nova')),
        ('oslo.messaging', machine.package_version('oslo.messaging')),
        ('tpm2-pytss', machine.package_version('tpm2-pytss')),
        machine.cpu(),
        ('load average', '%.2f %.2f %.2f' % os.getloadavg()),
    ]


def say(text=''):
    print(text, flush=True)


def percentile(values, share):
    """The nearest-rank percentile (share in 0..1) of values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class Batch:
    """Operations started together: each one's latency or its error."""

    def __init__(self, label):
        self.label = label
        self.latencies = []
        self.errors = []
        self.wall = None

    @property
    def count(self):
        return len(self.latencies) + len(self.errors)

    def throughput(self):
        return self.count / self.wall if self.wall else 0.0

    def p(self, share):
        return percentile(self.latencies, share) if self.latencies else None

    def report(self, indent='  '):
        say('%s%-34s %4d done in %7.2f s: %6.2f/s   p50 %8.1f ms   '
            'p99 %8.1f ms   errors %d' % (
                indent, self.label, self.count, self.wall,
                self.throughput(), _ms(self.p(0.5)), _ms(self.p(0.99)),
                len(self.errors)))
        for reason, times in collections.Counter(
                self.errors).most_common():
            say('%s    %3d x %s' % (indent, times, reason))


def _ms(seconds):
    return float('nan') if seconds is None else seconds * 1e3


def compare(label, project, baseline):
    """The ratios of project's figures to baseline's."""
    say('  %-34s throughput %.2f, p50 %.2f, p99 %.2f  (%s/%s)' % (
        label, project.throughput() / baseline.throughput(),
        project.p(0.5) / baseline.p(0.5) if project.latencies and
        baseline.latencies else float('nan'),
        project.p(0.99) / baseline.p(0.99) if project.latencies and
        baseline.latencies else float('nan'),
        project.label.split()[0], baseline.label.split()[0]))


def one_line(error):
    text = '%s: %s' % (type(error).__name__, error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def report_audit(report):
    for line in report.summary():
        say('    ' + line)
    return report.ok


# Part 1: concurrent live migrations in Nova's services

def make_cases(args, outcome):
    """The two clouds' test cases (Nova's functional harness is imported
    here, once the logs go to their file)."""
    from korora_nova.demo import cloud
    from korora_nova.demo import runner

    from nova import context as nova_context
    from nova import objects

    from korora_nova.conf import korora as korora_opts
    from korora_nova.migration import audit
    from korora_nova.migration import records
    from korora_nova.migration import states
    from tests.fixtures import nova_rabbitmq

    defaults = {opt.name: opt.default
                for opt in korora_opts.list_opts()[korora_opts.GROUP]}
    hosts = list(cloud.HOSTS)

    class Load:
        kind = None
        korora = False

        def configure_nova(self):
            super().configure_nova()
            # As deployed: Nova's one live migration at a time per host
            # lifted, Kororā's timeouts and PCR watch at their defaults
            # (the functional tests shorten them).
            self.flags(max_concurrent_live_migrations=max(args.migrations))
            self.flags(instances=-1, cores=-1, ram=-1, group='quota')
            self.flags(group='korora', **{
                name: defaults[name] for name in (
                    'pcr_watch_interval', 'attestation_timeout',
                    'migration_step_timeout')})

        def boot_all(self, count):
            """count vTPM servers, spread over the hosts, all ACTIVE."""
            flavor = self.create_vtpm_flavor(memory_mb=SERVER_MEMORY_MB)
            image = self.glance.image1['id']
            posted = []
            for number in range(count):
                request = self._build_server(
                    name='load-%d' % number, image_uuid=image,
                    flavor_id=flavor, networks='none',
                    host=hosts[number % len(hosts)])
                posted.append(self.admin_api.post_server(
                    {'server': request}))
            return [self.wait_for_server(server, 'ACTIVE',
                                         timeout=args.timeout)
                    for server in posted]

        def newest_migrations(self, context):
            newest = {}
            for migration in objects.MigrationList.get_by_filters(
                    context, {'migration_type': 'live-migration'}):
                known = newest.get(migration.instance_uuid)
                if known is None or migration.id > known.id:
                    newest[migration.instance_uuid] = migration
            return newest

        def new_records(self, known):
            """instance uuid -> its Kororā record not in known."""
            return {row.instance_uuid: row for row in records.list()
                    if row.uuid not in known}

        def migrate_all(self, context, servers):
            """Live-migrate every server at once; returns the Batch and
            the uuids of their Kororā records."""
            batch = Batch('%s %d concurrent' % (self.kind, len(servers)))
            before = self.newest_migrations(context)
            markers = {s['id']: before[s['id']].id if s['id'] in before
                       else 0 for s in servers}
            known = {row.uuid for row in records.list()}
            dests = {}
            for server in servers:
                host = self.server_host(server)
                dests[server['id']] = hosts[(hosts.index(host) + 1)
                                            % len(hosts)]
            started = {}
            refused = {}

            def post(server):
                started[server['id']] = time.perf_counter()
                try:
                    self.admin_api.post_server_action(
                        server['id'], {'os-migrateLive': {
                            'host': dests[server['id']],
                            'block_migration': 'auto'}})
                except Exception as error:
                    refused[server['id']] = 'API: %s' % one_line(error)

            first = time.perf_counter()
            # Threads are green threads here (Nova's harness patched).
            with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
                list(pool.map(post, servers))
            pending = {s['id'] for s in servers} - set(refused)
            finished = {}
            nova_status, korora = {}, {}
            last = first
            while pending:
                now = time.perf_counter()
                if now - first > args.timeout:
                    break
                newest = self.newest_migrations(context)
                new = self.new_records(known) if self.korora else {}
                for uuid in list(pending):
                    migration = newest.get(uuid)
                    if migration is None or migration.id <= markers[uuid]:
                        continue
                    record = new.get(uuid)
                    nova_done = migration.status in FINAL
                    korora_done = not self.korora or (
                        record is not None and states.is_final(
                            record.state))
                    # A failed Nova migration is final whatever Kororā's
                    # record says.
                    if nova_done and (korora_done or
                                      migration.status != 'completed'):
                        finished[uuid] = now - started[uuid]
                        nova_status[uuid] = migration.status
                        korora[uuid] = record
                        pending.discard(uuid)
                        last = now
                time.sleep(args.poll)
            batch.wall = last - first
            for uuid, reason in refused.items():
                batch.errors.append(reason)
            for uuid in pending:
                batch.errors.append('not final within %.0f s' % args.timeout)
            for uuid, seconds in finished.items():
                reason = self.failure(uuid, nova_status[uuid], korora[uuid])
                if reason:
                    batch.errors.append(reason)
                else:
                    batch.latencies.append(seconds)
            # Untimed: every server settles where it went.
            for server in servers:
                if server['id'] in finished and not self.failure(
                        server['id'], nova_status[server['id']],
                        korora[server['id']]):
                    try:
                        self.wait_for_server(server, 'ACTIVE',
                                             host=dests[server['id']],
                                             timeout=args.timeout)
                    except AssertionError as error:
                        batch.errors.append('after completed: %s'
                                            % one_line(error))
            return batch, {row.uuid for row in korora.values()
                           if row is not None}

        def failure(self, uuid, status, record):
            if status != 'completed':
                events = [details for _event, result, details
                          in self.action_events(uuid)
                          if result == 'Error']
                return 'Nova: migration %s%s' % (
                    status, ': %s' % events[-1].splitlines()[0]
                    if events and events[-1] else '')
            if self.korora and (record is None or
                                record.state != states.COMMITTED):
                return 'Kororā: %s%s' % (
                    record.state if record else 'no record',
                    ': %s' % record.reason if record is not None and
                    record.reason else '')
            return None

        def test_load(self):
            context = nova_context.get_admin_context()
            started = time.monotonic()
            servers = self.boot_all(max(args.migrations))
            runner.say('  %-3s %d vTPM servers ACTIVE over %s in %.1f s'
                       % (self.kind, len(servers), ', '.join(hosts),
                          time.monotonic() - started))
            mine = set()
            for count in args.migrations:
                batch, uuids = self.migrate_all(context, servers[:count])
                mine |= uuids
                outcome[self.kind][count] = batch
                runner.say('  %-3s %d concurrent live migrations: %d '
                           'completed%s, %d errors, %.2f s' % (
                               self.kind, count, len(batch.latencies),
                               ' and COMMITTED' if self.korora else '',
                               len(batch.errors), batch.wall))
            if self.korora:
                outcome['audit'] = audit.verify()
                committed = [row for row in records.list()
                             if row.uuid in mine]
                outcome['records'] = collections.Counter(
                    row.state for row in committed)
                outcome['migrations'] = sum(args.migrations)

    class Off(Load, nova_rabbitmq.OnRabbitMQ, cloud.PlainCloud):
        kind = OFF

    class On(Load, nova_rabbitmq.OnRabbitMQ, cloud.KororaCloud):
        kind = ON
        korora = True

    return {OFF: Off, ON: On}


def run_migrations(args):
    log_path = machine.services_log(args.log, 'load')
    outcome = {OFF: {}, ON: {}}
    cases = make_cases(args, outcome)
    from korora_nova.demo import runner

    say('Part 1: concurrent live migrations in Nova 34\'s services on '
        'RabbitMQ, three compute hosts')
    say('  (looks every %.3f s; log: %s)' % (args.poll, log_path))
    for kind in (OFF, ON):
        started = time.monotonic()
        say('Kororā %s: starting the cloud' % kind)
        reason = runner.run_case(cases[kind]('test_load'), log_path)
        if reason is not None:
            print('benchmark failed: %s (log: %s)' % (reason, log_path),
                  file=sys.stderr)
            return 2
        say('  (cloud %s: %.1f s in all)' % (kind, time.monotonic()
                                             - started))
    say()
    say('Concurrent live migrations (latency: API call to completed; with '
        'Kororā on, to COMMITTED):')
    for count in args.migrations:
        for kind in (OFF, ON):
            outcome[kind][count].report()
    say('Ratios Kororā on / off:')
    for count in args.migrations:
        compare('%d concurrent' % count, outcome[ON][count],
                outcome[OFF][count])
    say('Audit chain after the run with Kororā on (korora-manage audit '
        'verify):')
    intact = report_audit(outcome['audit'])
    states_seen = outcome['records']
    say('  Kororā records of the %d migrations: %s' % (
        outcome['migrations'], ', '.join(
            '%d %s' % (n, state) for state, n in states_seen.most_common())
        or 'none'))
    errors = sum(len(outcome[kind][count].errors)
                 for kind in (OFF, ON) for count in args.migrations)
    all_committed = states_seen.get('COMMITTED', 0) == outcome['migrations']
    say('  errors: %d (goal 0); chain %s; every record COMMITTED: %s' % (
        errors, 'intact' if intact else 'TAMPERED',
        'yes' if all_committed else 'NO'))
    return 0 if errors == 0 and intact and all_committed else 1


# Part 2: concurrent attestations over the broker

def run_attestations(args):
    # Native threads, as korora-verifier and korora-vtpm-manager run
    # (korora_nova.cmd.daemon): importing the tests package would
    # otherwise monkey-patch this process for eventlet, as Nova's do.
    os.environ['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = '1'
    import tests  # noqa: F401  (first: it decides the mode)
    from korora_nova.cmd import daemon  # noqa: F401  (oslo.service's)
    import fleet as fleet_module
    from korora_nova.migration import audit
    from korora_nova.rpcapi import verifier as verifier_rpcapi

    logging.basicConfig(level=logging.CRITICAL)
    say('Part 2: %d attestations (attest_host over RabbitMQ) of %d hosts, '
        'one swtpm and vTPM manager each' % (args.attestations, args.hosts))
    workdir = tempfile.mkdtemp(prefix='korora-bench-load-')
    # Enrolled one at a time: the set-up is not what is measured.
    fleet = fleet_module.Fleet(workdir, args.hosts, None, enroll_workers=1)
    try:
        try:
            fleet.start()
        except Exception as error:
            print('set-up failed: %s' % one_line(error), file=sys.stderr)
            return 2
        api = verifier_rpcapi.VerifierAPI()
        targets = [fleet.names[number % len(fleet.names)]
                   for number in range(args.attestations)]

        def attest(host):
            started = time.perf_counter()
            try:
                verdict = api.attest_host(host)
            except Exception as error:
                return time.perf_counter() - started, one_line(error)
            took = time.perf_counter() - started
            if not verdict.get('trusted'):
                return took, 'untrusted: %s' % '; '.join(
                    reason['message'] for reason in verdict['reasons'])
            return took, None

        def measure(label, workers):
            batch = Batch(label)
            first = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                for took, error in pool.map(attest, targets):
                    if error is None:
                        batch.latencies.append(took)
                    else:
                        batch.errors.append(error)
            batch.wall = time.perf_counter() - first
            return batch

        say('  %d attestations per host; one at a time, then all at once'
            % math.ceil(args.attestations / args.hosts))
        sequential = measure('one at a time', 1)
        concurrent_batch = measure('%d concurrent' % args.attestations,
                                   args.attestations)
        say()
        say('Attestations (latency: attest_host called to its answer):')
        sequential.report()
        concurrent_batch.report()
        say('Ratio concurrent / one at a time:')
        compare('%d attestations' % args.attestations, concurrent_batch,
                sequential)
        say('Audit chain after the attestations (korora-manage audit '
            'verify):')
        intact = report_audit(audit.verify())
        errors = len(sequential.errors) + len(concurrent_batch.errors)
        say('  errors: %d (goal 0); chain %s' % (
            errors, 'intact' if intact else 'TAMPERED'))
        return 0 if errors == 0 and intact else 1
    finally:
        fleet.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run_parts(argv):
    """Each part in a child process of its own; the worst status."""
    statuses = []
    for part in PARTS:
        child = subprocess.run([sys.executable, os.path.abspath(__file__)]
                               + list(argv) + ['--part', part])
        if child.returncode == 130:
            return 130
        statuses.append(child.returncode)
        say()
    return max(statuses)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = _arguments(argv)
    machine.stop_on_signals()
    try:
        if args.part is None:
            say('korora-nova under load: concurrent live migrations and '
                'attestations')
            for name, value in _versions():
                say('  %-15s %s' % (name + ':', value))
            say('  %-15s live migrations %s at once; %d attestations at '
                'once over %d hosts' % (
                    'run:', ', '.join(map(str, args.migrations)),
                    args.attestations, args.hosts))
            say()
            return run_parts(argv)
        if args.part == 'migrations':
            return run_migrations(args)
        return run_attestations(args)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
