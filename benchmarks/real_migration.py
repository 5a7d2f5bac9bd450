#!/usr/bin/env python3
"""What Kororā adds to a real live migration of a guest with a vTPM.

Run by hand, as root (it is not a test)::

    python benchmarks/real_migration.py [--count N] [--warmup W]
                                        [--memory-mib M] [--bus BUS]

The test bed is the real-hypervisor tests' (tests.
real_migration): two private libvirt hosts on this machine (KVM, or TCG
where /dev/kvm does not work) with migration TLS, each with its own
swtpm as platform TPM and its own vTPM manager on a RabbitMQ broker
(--bus in-process for oslo.messaging's in-process driver), the
verifier's database in SQLite, korora-libvirt-hook in both qemu.d. One
guest (no OS, --memory-mib, an encrypted swtpm TPM 2.0) live-migrates
back and forth between the hosts, in three modes taking turns, so that
the machine's drift touches all three alike:

off
    libvirt's migration with Nova's flags (+VIR_MIGRATE_TLS), the vTPM
    secret defined on the destination first, as Nova does; the hosts'
    korora-libvirt-hook switched off.
on
    Kororā's steps around the same call, in the hooked driver's order:
    both hosts attested, key certified, secret sealed and opened, the
    call with Kororā's flags (source kept defined), manifest signed on
    the source, verified on the destination, committed, the source's
    domain undefined.
on+vbr
    as on, with [korora] verify_before_resume: the guest arrives paused
    and resumes once the manifest checked out.

For each migration: the wall-clock time of the whole migration (Kororā's
steps included), libvirt's own job statistics of the completed migration
(virDomainGetJobStats(VIR_DOMAIN_JOB_STATS_COMPLETED) on the destination:
time_elapsed, downtime) and, with verify_before_resume, the time the
guest then stays paused until it resumes, which adds to its downtime.
Printed: medians, ratios and differences against off.

Goals: total time +5 % at most; downtime +0 ms without
verify_before_resume (the median difference must lie within the spread
of off's own downtimes), +50 ms at most with it. Exit status 0 when every
goal is met, 1 when one is missed, 2 when the set-up failed, 130 when
interrupted.
"""

import argparse
import os
import statistics
import sys

import machine  # benchmarks/machine.py, beside this script

MODES = ('off', 'on', 'on+vbr')


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=5,
                        help='Timed migrations per mode (default 5).')
    parser.add_argument('--warmup', type=int, default=1,
                        help='Untimed migrations per mode first (default '
                             '1).')
    parser.add_argument('--memory-mib', type=int, default=64,
                        help="The guest's memory in MiB (default 64).")
    parser.add_argument('--bus', choices=('rabbitmq', 'in-process'),
                        default='rabbitmq',
                        help="The vTPM managers' bus (default rabbitmq).")
    parser.add_argument('--log', help='Log file (default: a new file in '
                                      '/tmp).')
    args = parser.parse_args(argv)
    if args.count < 1 or args.warmup < 0 or args.memory_mib < 16:
        parser.error('--count >= 1, --warmup >= 0, --memory-mib >= 16')
    return args


def migrate_once(bed, guest, where, mode):
    """One migration in mode; returns (new host, figures in ms)."""
    bed.hook_enabled(mode != 'off')
    migrated, times = bed.live_migrate(
        guest, where, korora=(mode != 'off'),
        verify_before_resume=(mode == 'on+vbr'))
    stats = migrated.stats
    figures = {
        'total': times['total'] * 1000,
        'before': times.get('before', 0) * 1000,
        'transfer': times['transfer'] * 1000,
        'after': times.get('after', 0) * 1000,
        'libvirt': float(stats.get('time_elapsed', 0)),
        'downtime': float(stats.get('downtime', 0)),
        'paused': times.get('paused', 0) * 1000,
    }
    figures['guest_down'] = figures['downtime'] + figures['paused']
    return bed.other(where), figures


def iqr(values):
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4, method='inclusive')
    return quartiles[2] - quartiles[0]


def report(results):
    """Print the table and the goals; returns True if all are met."""
    median = {mode: {key: statistics.median(f[key] for f in results[mode])
                     for key in results[mode][0]} for mode in MODES}
    print()
    print('  %-8s %9s %9s %9s %9s %9s %9s %9s' % (
        'mode', 'total', 'before', 'transfer', 'after', 'libvirt',
        'downtime', 'paused'))
    for mode in MODES:
        m = median[mode]
        print('  %-8s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f' % (
            mode, m['total'], m['before'], m['transfer'], m['after'],
            m['libvirt'], m['downtime'], m['paused']))
    print('  (medians in ms; total = the whole migration, Kororā\'s steps '
          'included; libvirt, downtime: libvirt\'s job statistics; '
          'paused: arrival to resume)')
    off = median['off']
    spread = iqr([f['downtime'] for f in results['off']])
    total_ratio = median['on']['total'] / off['total']
    vbr_ratio = median['on+vbr']['total'] / off['total']
    down_on = median['on']['guest_down'] - off['guest_down']
    down_vbr = median['on+vbr']['guest_down'] - off['guest_down']
    goals = [
        ('total time, on / off', '%.3f (+%.1f ms)' % (
            total_ratio, median['on']['total'] - off['total']),
         total_ratio <= 1.05, '<= 1.05'),
        ('total time, on+vbr / off', '%.3f (+%.1f ms)' % (
            vbr_ratio, median['on+vbr']['total'] - off['total']),
         vbr_ratio <= 1.05, '<= 1.05'),
        ('guest downtime, on - off', '%+.1f ms (off spread %.1f ms)' % (
            down_on, spread), down_on <= spread, '+0 ms'),
        ('guest downtime, on+vbr - off', '%+.1f ms' % down_vbr,
         down_vbr <= 50.0, '<= +50 ms'),
    ]
    print()
    met = True
    for name, value, ok, goal in goals:
        print('  %-30s %-32s goal %-9s %s' % (name, value, goal,
                                              'PASS' if ok else 'MISS'))
        met = met and ok
    return met


def run(args):
    import fixtures

    from tests.fixtures import libvirt_hosts
    from tests.fixtures import real_migration

    reason = libvirt_hosts.availability()
    if reason:
        print('cannot run: %s' % reason, file=sys.stderr)
        return 2
    with fixtures.Fixture() as holder:
        bed = holder.useFixture(
            real_migration.KororaLibvirtPairFixture(bus=args.bus))
        where = bed.names[0]
        guest = bed.start_guest(where, memory_mib=args.memory_mib)
        print('  %-11s guest %s, %d MiB, %s' % (
            'hosts:', guest.name, args.memory_mib,
            'KVM' if os.access('/dev/kvm', os.W_OK) else 'TCG or KVM'),
            flush=True)
        results = {mode: [] for mode in MODES}
        for number in range(args.warmup + args.count):
            for mode in MODES:
                where, figures = migrate_once(bed, guest, where, mode)
                if number >= args.warmup:
                    results[mode].append(figures)
            print('  round %d/%d done%s' % (
                number + 1, args.warmup + args.count,
                ' (warm-up)' if number < args.warmup else ''), flush=True)
        return 0 if report(results) else 1


def main(argv=None):
    args = _arguments(argv)
    machine.stop_on_signals()
    log_path = machine.services_log(args.log, 'real-migration')
    print('korora-nova: a real live migration, Kororā off, on, and on with '
          'verify_before_resume')
    for name, value in (machine.python(), machine.cpu(),
                        ('libvirt', machine.package_version(
                            'libvirt-python'))):
        print('  %-11s %s' % (name + ':', value))
    print('  %-11s %d timed migrations (+%d warm-up) per mode, modes '
          'taking turns; bus %s' % ('run:', args.count, args.warmup,
                                    args.bus))
    print('  %-11s %s' % ('log:', log_path), flush=True)
    try:
        return run(args)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
