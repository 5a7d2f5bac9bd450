"""Run the fuzz targets under atheris, one process per target, within a
time budget each; print per target the inputs executed, the crashes and
the executions per second.

    python -m fuzz.run [--time SECONDS] [--runs N] [TARGET ...]

The budget defaults to $KORORA_FUZZ_TIME or 60 seconds per target. Each
target starts from its corpus (fuzz/corpus/<target>) and regressions
(fuzz/regressions/<target>); what it finds new stays in a scratch
folder. A crashing input is saved as crashes/<target>/crash-<sha1>
under --crashes (fuzz/crashes by default, not kept in git): minimise
it, fix the leak, and copy it into fuzz/regressions/<target>/. A
target restarts after a crash until its budget is spent.
"""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from fuzz import common
from fuzz import targets

DEFAULT_TIME = 60
_STAT = re.compile(rb'stat::(\w+):\s*(\d+)')


def fuzz_target(name, seconds, runs, crashes, scratch, max_len):
    """(inputs executed, crashes, seconds spent, CPU seconds) of one
    target."""
    artifacts = os.path.join(crashes, name)
    os.makedirs(artifacts, exist_ok=True)
    work = os.path.join(scratch, name)
    os.makedirs(work, exist_ok=True)
    seeds = [folder for folder in (os.path.join(common.CORPUS, name),
                                   os.path.join(common.REGRESSIONS, name))
             if os.path.isdir(folder)]
    executed = crashed = 0
    started = time.monotonic()
    cpu = _children_cpu()
    while True:
        left = seconds - (time.monotonic() - started)
        if left < 1 or (runs and executed >= runs):
            break
        argv = [sys.executable, '-m', 'fuzz.worker', name,
                '-max_total_time=%d' % left, '-timeout=10',
                '-rss_limit_mb=2048', '-max_len=%d' % max_len,
                '-print_final_stats=1',
                '-artifact_prefix=%s%s' % (artifacts, os.sep)]
        if runs:
            argv.append('-runs=%d' % (runs - executed))
        log = os.path.join(scratch, name + '.log')
        with open(log, 'wb') as output:
            status = subprocess.call(argv + [work] + seeds, stdout=output,
                                     stderr=subprocess.STDOUT,
                                     cwd=os.path.dirname(common.HERE))
        with open(log, 'rb') as output:
            text = output.read()
        stats = {key.decode(): int(value)
                 for key, value in _STAT.findall(text)}
        executed += stats.get('number_of_executed_units', 0)
        if status != 0:
            crashed += 1
            tail = text.decode('utf-8', 'replace').splitlines()[-30:]
            print('\n'.join('    | ' + line for line in tail), flush=True)
            if 'number_of_executed_units' not in stats:
                executed += _progress(text)
            if crashed >= 20:
                break
    return (executed, crashed, time.monotonic() - started,
            _children_cpu() - cpu)


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _progress(text):
    """Inputs run before a crash (the last '#N' progress line)."""
    found = re.findall(rb'^#(\d+)', text, re.M)
    return int(found[-1]) if found else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--time', type=int, default=int(
        os.environ.get('KORORA_FUZZ_TIME', DEFAULT_TIME)),
        help='seconds per target (default: $KORORA_FUZZ_TIME or %d)'
        % DEFAULT_TIME)
    parser.add_argument('--runs', type=int, default=0,
                        help='stop a target after this many inputs')
    parser.add_argument('--max-len', type=int, default=8192)
    parser.add_argument('--crashes',
                        default=os.path.join(common.HERE, 'crashes'))
    parser.add_argument('targets', nargs='*', metavar='TARGET',
                        help='default: all of %s' % ', '.join(targets.NAMES))
    options = parser.parse_args(argv)
    unknown = sorted(set(options.targets) - set(targets.NAMES))
    if unknown:
        parser.error('unknown targets: %s' % ', '.join(unknown))
    scratch = tempfile.mkdtemp(prefix='korora-fuzz-')
    total = 0
    print('%-24s %12s %8s %10s %8s'
          % ('target', 'inputs', 'crashes', 'exec/s', 'CPU s'))
    try:
        for name in options.targets or targets.NAMES:
            executed, crashed, spent, cpu = fuzz_target(
                name, options.time, options.runs, options.crashes, scratch,
                options.max_len)
            total += crashed
            # exec/s per CPU second: what the target costs, whatever else
            # the machine runs.
            print('%-24s %12d %8d %10d %8d' % (
                name, executed, crashed, executed / max(cpu, 1e-9), cpu),
                flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(main())
