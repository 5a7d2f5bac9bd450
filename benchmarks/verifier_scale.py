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

What is simulated, and how:

- **Hosts.** ``--pools`` simulator processes (default 4) each run one
  swtpm and answer for ``hosts / pools`` hosts. Each simulated host has
  an attestation key of its own: an ECDSA P-256 primary key of the
  swtpm's endorsement hierarchy whose template's unique field is the
  hash of the host's name, made again (CreatePrimary) for each quote
  and flushed after it. So every quote is a real TPM quote, signed by
  that host's own key, over the verifier's nonce.
- **Their TPM latency.** Each attestation first waits ``--latency``
  seconds (default 0.25), then quotes. The wait does not hold the swtpm:
  on a real fleet every host has its own TPM, so the latencies of
  different hosts overlap.
- **Their vTPM managers.** A simulator is one oslo.messaging RPC server
  (named after its pool) whose queue is also bound to the routing key of
  each of its hosts' servers, so the verifier's calls reach it exactly
  as they would reach each host's manager. It checks each challenge
  with the same Gate as the manager (the verifier's signature, the host,
  the purpose, replays) and answers as the manager answers.
- **Enrollment.** Hosts are written straight to the database
  (db.host_create) with their real AKs; their EK fields are
  placeholders, since enrollment is not measured here.

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
import base64
import concurrent.futures
import hashlib
import json
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
    parser.add_argument('--simulate', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# The simulator (one process per pool)

def _ak_template(host):
    from korora_nova.tpm import attestation_key
    template = attestation_key.ak_template('ecdsa-p256-sha256')
    template.publicArea.unique.ecc.x = hashlib.sha256(
        host.encode()).digest()
    return template


class SimulatedManagers:
    """The vTPM managers of one pool's hosts (see the module docstring)."""

    def __init__(self, connection, hosts, latency, trusted_keys):
        import oslo_messaging as messaging
        from korora_nova.attestation import pcr_values
        from korora_nova import conf
        from korora_nova.tpm import quote
        from korora_nova.vtpm_manager import authorization

        self.target = messaging.Target(version='2.0')
        self.connection = connection
        self.latency = latency
        self.selection = pcr_values.parse_selection(
            conf.CONF.korora.pcr_selection)
        self.gates = {host: authorization.Gate(host, trusted_keys)
                      for host in hosts}
        self.templates = {host: _ak_template(host) for host in hosts}
        self.values = quote.read_pcrs(connection, self.selection)

    def ak_publics(self):
        from tpm2_pytss.constants import ESYS_TR
        publics = {}
        with self.connection.esapi() as ectx:
            for host, template in self.templates.items():
                handle, public, _, _, _ = ectx.create_primary(
                    None, template, ESYS_TR.ENDORSEMENT)
                ectx.flush_context(handle)
                publics[host] = base64.b64encode(public.marshal()).decode()
        return publics

    def attest(self, ctxt, challenge):
        import jwt
        from korora_nova.attestation import pcr_values
        from korora_nova.attestation import purpose
        from korora_nova import exception
        from korora_nova import rpc
        from korora_nova.tpm import quote
        from tpm2_pytss.constants import ESYS_TR

        try:
            host = jwt.decode(challenge, options={
                'verify_signature': False})['sub']
            gate = self.gates[host]
        except (jwt.PyJWTError, KeyError, TypeError):
            raise exception.NotAuthorized('not a challenge for this pool')
        nonce, label = gate.challenge(challenge, 'attest')
        time.sleep(self.latency)   # this host's own TPM at work
        with self.connection.esapi() as ectx:
            handle, _, _, _, _ = ectx.create_primary(
                None, self.templates[host], ESYS_TR.ENDORSEMENT)
            try:
                made = quote.quote(self.connection, _Loaded(handle),
                                   self.selection,
                                   purpose.qualifying_data(label, nonce),
                                   known_values=self.values)
            finally:
                ectx.flush_context(handle)
        return {'message': rpc.encode(made.message),
                'signature': rpc.encode(made.signature),
                'pcr_values': pcr_values.to_json(made.pcr_values)}


class _Loaded:
    """An AK loaded already, as tpm.quote.quote takes one."""

    def __init__(self, handle):
        self._handle = handle

    def handle(self, ectx):
        return self._handle


def _bind_routing_keys(url, queue, keys):
    """Deliver calls to each of keys' servers to queue as well."""
    import kombu
    from korora_nova import conf

    exchange = conf.CONF.control_exchange
    url = url.replace('rabbit://', 'amqp://', 1)   # kombu's name
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        for key in keys:
            channel.queue_bind(queue=queue, exchange=exchange,
                               routing_key=key)


def simulate(spec):
    """Run one pool: spec is a JSON file written by the benchmark."""
    # Until sigwait takes them: the swtpm must be stopped on the way out.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    from korora_nova.cmd import daemon  # noqa: F401  (native threads)
    with open(spec) as stream:
        spec = json.load(stream)
    from korora_nova.attestation import results
    from korora_nova import conf
    from korora_nova.demo import services
    from korora_nova import rpc

    conf.CONF(['--config-file', spec['config']], project='korora')
    from oslo_messaging import server as messaging_server
    conf.CONF.register_opts(messaging_server._pool_opts)
    conf.CONF.set_override('executor_thread_pool_size', 512)
    tpm = services.SoftwareTPMFixture()
    tpm.setUp()
    try:
        managers = SimulatedManagers(
            tpm.connection, spec['hosts'], spec['latency'],
            results.TrustedKeys.load(conf.CONF.korora.verifier_public_keys))
        publics = managers.ak_publics()
        server_name = 'simulated-pool-%d' % spec['pool']
        server = rpc.get_server(conf.CONF.korora.manager_topic, server_name,
                                [managers])
        server.start()
        topic = conf.CONF.korora.manager_topic
        _bind_routing_keys(conf.CONF.transport_url,
                           '%s.%s' % (topic, server_name),
                           ['%s.%s' % (topic, host) for host in spec['hosts']])
        with open(spec['ready'] + '.tmp', 'w') as stream:
            json.dump({'publics': publics, 'pid': os.getpid(),
                       'swtpm_pid': tpm.tpm.pid,
                       'values': _values_json(managers.values)}, stream)
        os.rename(spec['ready'] + '.tmp', spec['ready'])
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        server.stop()
        server.wait()
    finally:
        tpm.cleanUp()


def _values_json(values):
    from korora_nova.attestation import pcr_values
    return pcr_values.to_json(values)


# The benchmark

class Bed:
    """The broker, the database, the keys, the simulators, the hosts."""

    def __init__(self, args, folder):
        self.args = args
        self.folder = folder
        self.simulators = []

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
        self._enroll()

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
        names = ['sim-%05d' % i for i in range(self.args.hosts)]
        self.pools = [names[pool::self.args.pools]
                      for pool in range(self.args.pools)]
        ready = []
        for pool, hosts in enumerate(self.pools):
            spec = os.path.join(self.folder, 'pool-%d.json' % pool)
            ready.append(spec + '.ready')
            with open(spec, 'w') as stream:
                json.dump({'config': self.config, 'hosts': hosts,
                           'latency': self.args.latency, 'pool': pool,
                           'ready': ready[-1]}, stream)
            self.simulators.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__),
                 '--simulate', spec],
                stdout=open(spec + '.log', 'w'), stderr=subprocess.STDOUT,
                cwd=os.path.dirname(os.path.abspath(__file__))))
        self.answers = []
        deadline = time.monotonic() + 60 + self.args.hosts / 50
        for path, process in zip(ready, self.simulators):
            while not os.path.exists(path):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError('a simulator did not start: see %s'
                                       % path.replace('.ready', '.log'))
                time.sleep(0.2)
            with open(path) as stream:
                self.answers.append(json.load(stream))

    def _enroll(self):
        from korora_nova.attestation import enrollment
        from korora_nova.attestation import evidence
        from korora_nova.attestation import pcr_values
        from korora_nova.attestation import policy as policy_module
        from korora_nova.db import api as db

        for pool, (hosts, answer) in enumerate(zip(self.pools,
                                                   self.answers)):
            name = 'pool-%d' % pool
            reference = policy_module.from_values(
                name, 1, pcr_values.from_json(answer['values']))
            db.policy_create(reference, signature=policy_module.sign(
                reference, self.operator))
            for host in hosts:
                public = base64.b64decode(answer['publics'][host])
                ak = evidence.parse_public(public, 'AK public key')
                placeholder = ('simulated EK of %s' % host).encode()
                db.host_create(enrollment.Identity(
                    host=host, ek_type='rsa2048', ek_certificate=placeholder,
                    ek_certificate_sha256=hashlib.sha256(
                        placeholder).hexdigest(),
                    ek_public=placeholder, ak_public=public,
                    ak_public_pem=b'', ak_name=bytes(ak.get_name()).hex(),
                    trust_on_first_use=False), policy_name=name)

    def pids(self):
        """{part: [pid, ...]} of what runs beside the verifier."""
        return {'simulators': [p.pid for p in self.simulators],
                'swtpm': [a['swtpm_pid'] for a in self.answers],
                'broker': [self.broker.pid],
                'database': [self.database_server_pid()]}

    def database_server_pid(self):
        from tests.fixtures import databases
        return databases.shared_server(databases.POSTGRESQL).pid

    def stop(self):
        for process in self.simulators:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.simulators:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
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
    if args.simulate:
        simulate(args.simulate)
        return 0
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
