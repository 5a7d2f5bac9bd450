#!/usr/bin/env python3
"""Verifier: attestation rounds per second for N enrolled hosts, and the
time from a PCR change on a host to TrustedVTPMFilter rejecting it.

Run by hand (it is not a test)::

    python benchmarks/verifier.py [--hosts N] [--rounds R] [--trials T]

Everything is real but the process boundaries: a private rabbitmq-server
node (tests.fixtures.rabbitmq), one swtpm per host (EK certificates
from a throwaway local CA), N vTPM managers (VTPMManager with its PCR
watch, each behind its own oslo.messaging RPC server on topic
korora-vtpm-manager, server = the host's name), the verifier (Verifier
with its RPC server on topic korora-verifier and its schedule, and an
Attestor over the bus) and a SQLite verifier database, all in this one
process with native threads. N manager processes would measure the
start-up and scheduling of N Python interpreters on this machine rather
than the verifier; on a real fleet each manager runs on its own host.

Hosts are enrolled over the bus (EK certificate chain checked against
the CA, AK bound by credential activation) under a reference policy of
the PCR values their managers left after measuring themselves; every
host is checked to be trusted before anything is timed.

rounds
    The verifier's scheduled round, ``Verifier.run_due()``: every host is
    made due, then attested (nonce, RPC call to its manager, quote by its
    swtpm, appraisal, verdict recorded). R rounds; the median is
    reported as rounds per second and attestations per second.
PCR change to rejection
    [korora] attestation_interval is 60 s, so no scheduled round can
    notice a change within a trial: only the event path (the manager's
    PCR watch casts pcrs_changed, the verifier attests the host at once)
    can. For T hosts in turn, PCR 10 is extended through the host's
    manager connection, and the time until
    ``TrustedVTPMFilter.filter_all`` (a vTPM RequestSpec, every host's
    HostState) stops returning the host is measured. The floor beside
    it: one direct ``Attestor.attest`` of a host, which the event path
    adds to the watch's delay (0 to pcr_watch_interval) and two hops on
    the bus.

Goal: every PCR-change trial under 1 s (the event path, whatever the
scheduled interval). Exit status: 0 if the goal is met, 1 if it is
missed, 2 if the set-up failed, 130 if interrupted.
"""

import argparse
import concurrent.futures
import datetime
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric import ec
import fixtures
from oslo_messaging import conffixture

import machine  # benchmarks/machine.py, beside this script
from korora_nova.attestation import es256_keys
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import results
from korora_nova import conf as korora_conf
from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova.db import models
from korora_nova import exception
from korora_nova.filters import trusted_vtpm
from korora_nova.hypervisors import file_backend
from korora_nova import rpc
from tests.fixtures import rabbitmq
from tests.fixtures import raw_sql
from korora_nova.tpm import quote as tpm_quote
from korora_nova.tpm import swtpm
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.verifier import manager as verifier_manager
from korora_nova.rpcapi import verifier as verifier_rpcapi
from korora_nova.vtpm_manager import manager as vtpm_manager
from korora_nova.rpcapi import vtpm_manager as manager_rpcapi

from nova import objects
from nova.scheduler import host_manager

CONF = korora_conf.CONF
GOAL_SECONDS = 1.0
SCHEDULED_INTERVAL = 60
MEASURED_PCR = 10
POLICY = 'bench-fleet'
CELL = 'c0ffee00-0000-4000-8000-000000000000'
VTPM_EXTRA_SPECS = {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb'}
START_WORKERS = 4
POLL = 0.005


def _arguments(argv):
    parser = argparse.ArgumentParser(
        description='Verifier rounds per second for N hosts, and the time '
                    'from a PCR change to the scheduler filter rejecting '
                    'the host.')
    parser.add_argument('--hosts', type=int, default=100, metavar='N',
                        help='enrolled hosts, each with its own swtpm and '
                             'vTPM manager (default: %(default)s)')
    parser.add_argument('--rounds', type=int, default=5, metavar='R',
                        help='timed attestation rounds (default: '
                             '%(default)s)')
    parser.add_argument('--trials', type=int, default=5, metavar='T',
                        help='PCR changes, each on another host (default: '
                             '%(default)s)')
    parser.add_argument('--watch-interval', type=float, default=None,
                        metavar='S',
                        help='[korora] pcr_watch_interval of every manager '
                             '(default: the option\'s default)')
    parser.add_argument('--timeout', type=float, default=30.0, metavar='S',
                        help='give up on a PCR-change trial after S seconds '
                             '(default: %(default)s)')
    parser.add_argument('--verbose', action='store_true',
                        help='show korora\'s and oslo.messaging\'s '
                             'warnings')
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.rounds < 1 or not (
            1 <= args.trials <= args.hosts):
        parser.error('--hosts and --rounds must be at least 1, --trials '
                     'from 1 to --hosts')
    return args


def _versions():
    return [
        machine.python(),
        ('oslo.messaging', machine.package_version('oslo.messaging')),
        ('tpm2-pytss', machine.package_version('tpm2-pytss')),
        machine.cpu(),
        ('load average', '%.2f %.2f %.2f' % os.getloadavg()),
    ]


def _cpu_seconds(pids):
    """CPU time of this process and of the given other processes."""
    ticks = os.sysconf('SC_CLK_TCK')
    total = sum(os.times()[:2])
    for pid in pids:
        try:
            with open('/proc/%d/stat' % pid) as stat:
                fields = stat.read().rpartition(')')[2].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            pass
    return total


class Fleet:
    """The broker, N hosts (swtpm + manager + RPC server), the verifier."""

    def __init__(self, workdir, count, watch_interval):
        self.workdir = workdir
        self.names = ['compute-%03d' % i for i in range(1, count + 1)]
        self.watch_interval = watch_interval
        self.broker = None
        self.tpms = {}
        self.managers = {}
        self.servers = []
        self.verifier = None

    # Set-up

    def start(self):
        started = time.monotonic()
        self.broker = rabbitmq.RabbitMQFixture()
        self.broker.setUp()
        print('  rabbitmq-server node up at %s in %.1f s'
              % (self.broker.url, time.monotonic() - started), flush=True)
        self._configure()
        migration.db_sync()
        self._start_tpms()
        self._start_managers()
        self._start_verifier()
        self._enroll()

    def _configure(self):
        # rpc.get_transport reads [DEFAULT] transport_url before
        # oslo.messaging registers it: register oslo.messaging's options.
        conffixture.ConfFixture(CONF)
        CONF.set_override('transport_url', self.broker.url)
        CONF.set_override('connection', 'sqlite:///%s' % os.path.join(
            self.workdir, 'korora.sqlite'), group='korora_database')
        # The verifier's signing key; every manager pins its public half.
        private = os.path.join(self.workdir, 'verifier-signing-key.pem')
        public = os.path.join(self.workdir, 'verifier-public-key.pem')
        self.signer = results.generate_signing_key(private)
        results.write_public_key(self.signer, public)
        CONF.set_override('verifier_signing_key', private, group='korora')
        CONF.set_override('verifier_public_keys', [public], group='korora')
        CONF.set_override('attestation_interval', SCHEDULED_INTERVAL,
                          group='korora')
        CONF.set_override('ek_ca_bundle', os.path.join(
            self.workdir, 'ek-ca-bundle.pem'), group='korora')
        if self.watch_interval is not None:
            CONF.set_override('pcr_watch_interval', self.watch_interval,
                              group='korora')

    def _start_tpms(self):
        ca = swtpm.LocalCA(os.path.join(self.workdir, 'ek-ca'))
        started = time.monotonic()
        # The first TPM creates the CA; the others are made in parallel.
        first = self._start_tpm(ca, self.names[0])
        ca.write_bundle(CONF.korora.ek_ca_bundle)
        with concurrent.futures.ThreadPoolExecutor(START_WORKERS) as pool:
            list(pool.map(lambda name: self._start_tpm(ca, name),
                          self.names[1:]))
        print('  %d swtpm started in %.1f s (first one: %s)'
              % (len(self.tpms), time.monotonic() - started, first.tcti),
              flush=True)

    def _start_tpm(self, ca, name):
        tpm = swtpm.SoftwareTPM(os.path.join(self.workdir, name), ca)
        self.tpms[name] = tpm
        return tpm.start()

    def _start_managers(self):
        started = time.monotonic()
        verifier_api = verifier_rpcapi.VerifierAPI()
        for name in self.names:
            manager = vtpm_manager.VTPMManager(
                CONF, host=name, tcti=self.tpms[name].tcti,
                state_path=os.path.join(self.workdir, name, 'state'),
                verifier_api=verifier_api,
                state_backend=file_backend.FileStateBackend(
                    os.path.join(self.workdir, 'instances'), name))
            self.managers[name] = manager
            manager.start()
            server = rpc.get_server(CONF.korora.manager_topic, name,
                                    [vtpm_manager.BusEndpoint(manager)])
            server.start()
            self.servers.append(server)
        print('  %d vTPM managers measured themselves and serve (%.1f s, '
              'pcr_watch_interval %.2f s)'
              % (len(self.managers), time.monotonic() - started,
                 CONF.korora.pcr_watch_interval), flush=True)

    def _start_verifier(self):
        self.attestor = attestation.Attestor(
            manager_rpcapi.VTPMManagerAPI(self.signer))
        self.verifier = verifier_manager.Verifier(CONF, self.attestor)
        server = rpc.get_server(CONF.korora.verifier_topic, 'benchmark',
                                [self.verifier])
        server.start()
        self.servers.append(server)

    def _enroll(self):
        started = time.monotonic()
        # The reference policy: what the managers left in their PCRs.
        golden = {}
        for manager in self.managers.values():
            for bank, pcrs in tpm_quote.read_pcrs(
                    manager.connection, manager.selection).items():
                for index, value in pcrs.items():
                    golden.setdefault(bank, {}).setdefault(
                        str(index), set()).add(value.hex())
        # Signed by an operator key the verifier trusts: an unsigned
        # policy would leave every host untrusted.
        operator = ec.generate_private_key(ec.SECP256R1())
        operator_public = os.path.join(self.workdir, 'operator-key.pub.pem')
        with open(operator_public, 'wb') as stream:
            stream.write(es256_keys.public_pem(operator.public_key()))
        CONF.set_override('policy_signing_keys', [operator_public],
                          group='korora')
        reference = policy_module.from_json({
            'name': POLICY, 'version': 1,
            'pcrs': {bank: {index: sorted(values)
                            for index, values in pcrs.items()}
                     for bank, pcrs in golden.items()}})
        db.policy_create(reference,
                         signature=policy_module.sign(reference, operator))
        api = manager_rpcapi.VTPMManagerAPI(self.signer)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda name: enrollment.enroll(api, name, POLICY),
                          self.names))
        self.round()
        self.check_all_trusted()
        print('  %d hosts enrolled (EK chain, credential activation) and '
              'attested trusted in %.1f s'
              % (len(self.names), time.monotonic() - started), flush=True)

    # Measurements

    def make_all_due(self):
        with raw_sql.session() as session:
            session.query(models.Host).update(
                {'next_attestation_at': db.utcnow()})

    def postpone_all(self, seconds):
        """No host is due for a scheduled attestation for a while."""
        with raw_sql.session() as session:
            session.query(models.Host).update(
                {'next_attestation_at': db.utcnow() + datetime.timedelta(
                    seconds=seconds)})

    def round(self):
        """One scheduled round over every host: (seconds, hosts)."""
        self.make_all_due()
        started = time.monotonic()
        attested = 0
        while attested < len(self.names):
            count = self.verifier.run_due()   # at most 100 per call
            if not count:
                break
            attested += count
        return time.monotonic() - started, attested

    def check_all_trusted(self):
        trust = db.host_trust_all()
        bad = sorted(name for name in self.names
                     if not trust.get(name, (False,))[0])
        if bad:
            raise exception.KororaError(
                '%d hosts are not trusted, e.g. %s: %s'
                % (len(bad), bad[0], trust.get(bad[0], (None, 'no '
                                                        'verdict'))[1]))

    # Tear-down

    def stop(self):
        if self.verifier is not None:
            self.verifier.stop()
        # Each server takes about a second to stop: all at once.
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            for future in [pool.submit(_stop_server, server)
                           for server in self.servers]:
                error = future.exception()
                if error is not None:     # keep cleaning up
                    print('  stopping an RPC server: %s' % error)
        for manager in self.managers.values():
            manager.stop()
        for tpm in self.tpms.values():
            if tpm.pid is None:
                tpm.pid = _read_pid(os.path.join(tpm.state_dir,
                                                 'swtpm.pid'))
            tpm.stop()
        rpc.cleanup()
        db.dispose()
        if self.broker is not None:
            self.broker.cleanUp()


def _stop_server(server):
    server.stop()
    server.wait()


def _read_pid(path):
    try:
        with open(path) as stream:
            return int(stream.read().strip())
    except (OSError, ValueError):
        return None


def vtpm_request_spec():
    flavor = objects.Flavor(
        name='vtpm', flavorid='vtpm', memory_mb=1024, vcpus=1, root_gb=1,
        ephemeral_gb=0, swap=0, extra_specs=dict(VTPM_EXTRA_SPECS))
    image = objects.ImageMeta(name='image',
                              properties=objects.ImageMetaProps())
    return objects.RequestSpec(flavor=flavor, image=image, num_instances=1)


def measure_rounds(fleet, rounds):
    times = []
    for number in range(1, rounds + 1):
        seconds, attested = fleet.round()
        fleet.check_all_trusted()
        times.append(seconds)
        print('  round %d: %d hosts attested in %.3f s  (%.0f '
              'attestations/s)' % (number, attested, seconds,
                                   attested / seconds), flush=True)
    return times


def measure_floor(fleet, hosts):
    """One direct Attestor.attest per host, as the event path makes."""
    times = []
    for name in hosts:
        started = time.monotonic()
        verdict = fleet.attestor.attest(name)
        times.append(time.monotonic() - started)
        if not verdict.trusted:
            raise exception.KororaError(verdict.summary())
    return times


def measure_pcr_changes(fleet, hosts, timeout):
    """Seconds from each host's PCR extend until the filter drops it."""
    spec = vtpm_request_spec()
    states = [host_manager.HostState(name, name, CELL)
              for name in fleet.names]
    check = trusted_vtpm.TrustedVTPMFilter()
    passing = {state.host for state in check.filter_all(states, spec)}
    missing = set(fleet.names) - passing
    if missing:
        raise exception.KororaError(
            'the filter rejects %d hosts before any change, e.g. %s'
            % (len(missing), sorted(missing)[0]))
    # The schedule runs (every 60 s per host), but no host is due while
    # the trials last, however long they take: only the event path can
    # notice a change.
    fleet.postpone_all(SCHEDULED_INTERVAL + len(hosts) * (timeout + 1))
    fleet.verifier.start()
    latencies = []
    for number, name in enumerate(hosts, 1):
        tpm_quote.extend_pcr(fleet.managers[name].connection, 'sha256',
                             MEASURED_PCR, b'benchmark trial %d' % number)
        changed = time.monotonic()
        deadline = changed + timeout
        while name in {s.host for s in check.filter_all(states, spec)}:
            if time.monotonic() > deadline:
                raise exception.KororaError(
                    '%s still passes the filter %.0f s after its PCR %d '
                    'changed' % (name, timeout, MEASURED_PCR))
            time.sleep(POLL)
        latency = time.monotonic() - changed
        latencies.append(latency)
        summary = db.host_trust_all()[name][1]
        print('  trial %d: %s rejected %.3f s after its PCR %d changed'
              % (number, name, latency, MEASURED_PCR), flush=True)
        if 'PCR sha256:%d' % MEASURED_PCR not in summary:
            raise exception.KororaError('unexpected verdict: %s' % summary)
    return latencies


def _idle_load(fleet, seconds=2.0):
    """CPU share (of one core) that the fleet uses while nothing is
    attested: mostly the managers' PCR watches and their swtpms."""
    pids = [t.pid for t in fleet.tpms.values() if t.pid]
    pids.append(fleet.broker.beam_pid or 0)
    before, started = _cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)
    return (_cpu_seconds(pids) - before) / (time.monotonic() - started)


def run(args, workdir):
    print('Verifier benchmark: %d hosts, %d rounds, %d PCR-change trials'
          % (args.hosts, args.rounds, args.trials))
    for name, value in _versions():
        print('  %-15s %s' % (name + ':', value))
    print('Set-up:', flush=True)
    fleet = Fleet(workdir, args.hosts, args.watch_interval)
    try:
        try:
            fleet.start()
        except Exception as error:
            if isinstance(error, fixtures.MultipleExceptions):
                error = error.args[0][1]    # the broker fixture's own
            print('set-up failed: %s' % error, file=sys.stderr)
            return 2
        idle = _idle_load(fleet)
        print('  idle fleet (PCR watches, swtpm, broker) uses %.0f%% of '
              'one core' % (idle * 100), flush=True)

        print('Attestation rounds (Verifier.run_due, %d threads):'
              % verifier_manager.ROUND_WORKERS, flush=True)
        round_times = measure_rounds(fleet, args.rounds)
        trial_hosts = fleet.names[::max(1, len(fleet.names)
                                        // args.trials)][:args.trials]
        floor = measure_floor(fleet, trial_hosts)
        print('PCR change -> TrustedVTPMFilter rejects the host '
              '(attestation_interval %d s):' % SCHEDULED_INTERVAL,
              flush=True)
        latencies = measure_pcr_changes(fleet, trial_hosts, args.timeout)
    finally:
        fleet.stop()

    median_round = statistics.median(round_times)
    worst = max(latencies)
    print()
    print('Medians of %d rounds over %d hosts:' % (args.rounds, args.hosts))
    print('  round:              %8.3f s    %6.2f rounds/s'
          % (median_round, 1 / median_round))
    print('  attestations:                   %6.0f /s   %6.1f ms each'
          % (args.hosts / median_round, 1000 * median_round / args.hosts))
    print('PCR change to rejection by the filter, %d trials:'
          % len(latencies))
    print('  median %.3f s, worst %.3f s   (pcr_watch_interval %.2f s; '
          'one direct attestation: median %.3f s)'
          % (statistics.median(latencies), worst,
             CONF.korora.pcr_watch_interval, statistics.median(floor)))
    met = worst < GOAL_SECONDS
    print('  goal: every trial under %.1f s through the event path: %s'
          % (GOAL_SECONDS, 'PASS' if met else 'MISS'))
    return 0 if met else 1


def main(argv=None):
    args = _arguments(argv)
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.CRITICAL,
        format='%(levelname)s %(name)s: %(message)s')
    objects.register_all()
    machine.stop_on_signals()
    workdir = tempfile.mkdtemp(prefix='korora-bench-verifier-')
    try:
        return run(args, workdir)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except exception.KororaError as error:
        print('benchmark failed: %s' % error, file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
