"""What every benchmark here needs to say about the machine it ran on,
and the way they all stop: SIGTERM and SIGHUP clean up as Ctrl-C does."""

import gc
import importlib.metadata
import os
import platform
import signal
import sys
import tempfile
import time

# The tests' fixtures (tests/fixtures: a RabbitMQ node, private libvirt
# hosts) serve the benchmarks too: every benchmark imports this module
# first, so the repository's root goes on the path here.
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)


def _terminate(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def stop_on_signals():
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)


def cpu_model():
    try:
        with open('/proc/cpuinfo') as info:
            for line in info:
                if line.startswith('model name'):
                    return line.partition(':')[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'unknown'


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


def python():
    return ('Python', '%s (%s)' % (platform.python_version(),
                                   platform.python_implementation()))


def cpu():
    return ('CPU', '%s (%d online)' % (cpu_model(), os.cpu_count() or 0))


def repeat(one_pass, seconds, min_passes=1):
    """Run one_pass() until `seconds` have passed, at least min_passes
    times; return (passes, wall seconds, CPU seconds of the process).

    Garbage is collected first, so no earlier allocation is paid for
    inside the timing.
    """
    gc.collect()
    passes = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        one_pass()
        passes += 1
        now = time.perf_counter()
        if now >= deadline and passes >= min_passes:
            return passes, now - start, time.process_time() - cpu_start


def services_log(path, name):
    """Send the services' logs to path, or to a new kept file in /tmp
    named after the benchmark; returns the path."""
    from korora_nova.demo import runner

    if path:
        path = os.path.abspath(path)
    else:
        handle, path = tempfile.mkstemp(prefix='korora-bench-%s-' % name,
                                        suffix='.log')
        os.close(handle)
    runner.log_to_file(path)
    return path
