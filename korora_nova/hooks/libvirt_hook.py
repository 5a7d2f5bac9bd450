"""The libvirt hook on a destination host: only Kororā-approved live
migrations of vTPM guests come in.

Installed (libvirt >= 6.5 runs every executable of these folders, in
turn, beside an operator's own hook) as::

    /etc/libvirt/hooks/qemu.d/korora     (QEMU/KVM)
    /etc/libvirt/hooks/libxl.d/korora    (Xen)

libvirt runs it with ``DOMAIN OPERATION SUB_OPERATION EXTRA`` and the
domain XML on stdin. On the destination of a live migration
``DOMAIN migrate begin -`` comes first, with the incoming definition; a
non-zero exit cancels the migration and the hook's stderr reaches the
error the source reports. Only that call is checked; every other
operation ends at once with status 0, reading neither the configuration
nor the database.

The incoming domain passes when the verifier's database holds exactly
one Kororā migration in flight for the instance (the ``<uuid>`` of a
Nova domain is the instance's UUID) whose destination is this host
([DEFAULT] host, the name Nova's compute and the Kororā hooks use) and
whose state is TRANSFERRING: the source and the destination attested
each other with their TPMs, the destination's key was certified, and the
destination opened the sealed vTPM secret (its pre_live_migration,
korora_nova.hooks.driver). Anything else refuses it: no record, a record
for another host, one at another step, more than one.

The hook asks no service. The issue's wording was to ask the local vTPM
manager; but the record in the database is the authoritative state of
the attested protocol, which every step moves in a conditional,
audited transaction, while an answer on the message bus could be forged
by whoever can publish there. So the hook reads the record itself, with
the [korora_database] options of the configuration file.

A domain without any TPM passes without a look at the database, unless
[korora] libvirt_hook_require_approval_for_all is set. A domain whose
TPM Kororā cannot migrate at all (passthrough, external, Xen stub
domain, several TPMs) is refused whatever the records say.

Because libvirt waits for a hook without a time limit and a hook must
never call back into libvirt, this one:

* bounds itself: [korora] libvirt_hook_timeout seconds after it starts
  (counted from the start of the process, the configured value applying
  once the configuration is read, the default until then) a timer ends
  the process with status 1 and "... timed out" on stderr; the driver's
  connect/read timeouts and an alarm signal a few seconds later are
  backstops should that timer never run;
* fails closed: an unreadable configuration, an unreachable database,
  a missing, oversized (over 1 MiB) or malformed domain XML, an
  unknown state, any unexpected error: status 1;
* writes nothing on stdout (a migrate hook's stdout replaces the
  incoming XML): file descriptors 1 and 2 point to /dev/null while it
  runs, so no library can write there either;
* writes exactly one line on stderr when it refuses, starting with
  "Korora: " (libvirt shows it in the source's error), and nothing when
  it passes; details and any traceback go only to the logs configured
  (log_file / log_dir, use_syslog, use_journal).

Configuration: the default oslo.config files of project "korora"
(/etc/korora/korora.conf, ...), or --config-file/--config-dir options
given before libvirt's four arguments (a wrapper script can pass them:
libvirt hands a hook a minimal environment).
"""

import logging
import math
import os
import signal
import sys
import threading
import time
import uuid as uuidlib

# Nothing heavier than the standard library at import: libvirt runs the
# hook for every operation on every domain (prepare, start, started,
# stopped, release...), and all but "migrate" leave at once.

PROG = 'korora-libvirt-hook'
PREFIX = 'Korora: '

# The domain XML read from stdin, at most (domain_xml parses no more).
MAX_XML_BYTES = 1024 * 1024
# One line on stderr, at most this many characters.
MAX_LINE = 1000
# Domain names as shown in messages.
MAX_NAME = 64

EXIT_PASS, EXIT_REFUSE = 0, 1
# Seconds after the configured limit when SIGALRM (default action:
# terminate) ends a process whose timer could not run.
ALARM_BACKSTOP = 3

LOG = logging.getLogger(__name__)


class Refused(Exception):
    """The incoming domain is refused; the message says why (one line,
    without the prefix)."""


def one_line(text, limit=MAX_LINE):
    """text as one printable line of at most limit characters."""
    text = ''.join(c if c.isprintable() else ' ' for c in str(text))
    text = ' '.join(text.split())
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


# What each state before TRANSFERRING still lacks, and why later ones
# are not admitted.
_NOT_YET = {
    'REQUESTED': 'the hosts have not attested each other yet',
    'PEERS_ATTESTED': "the destination's key is not certified yet",
    'KEY_CERTIFIED': 'the destination has not opened the sealed vTPM '
                     'secret yet',
    'MEASURED': 'its transfer has ended already',
    'VERIFIED': 'its transfer has ended already',
}


# The decision, once its inputs are known.

def instance_uuid_of(facts):
    """The instance UUID of a Nova domain (its <uuid>), canonical."""
    if not facts.uuid:
        raise Refused('the incoming domain XML has no <uuid>')
    try:
        return str(uuidlib.UUID(facts.uuid))
    except ValueError:
        raise Refused('the incoming domain\'s <uuid> %r is not a UUID'
                      % facts.uuid[:64])


def needs_approval(facts, require_for_all):
    """Whether the domain may come in only with an approved migration.

    Raises Refused for a TPM Kororā cannot migrate at all.
    """
    refusal = facts.refusal
    if refusal:
        raise Refused(refusal)
    has_tpm = bool(facts.tpms or facts.xen_stubdom)
    return has_tpm or require_for_all


def check_records(found, instance_uuid, host):
    """Refused unless found (the instance's in-flight migration records)
    is one migration to host, TRANSFERRING. Returns that record."""
    from korora_nova.migration import states

    what = 'no Korora-approved migration of instance %s to %s' % (
        instance_uuid, host)
    if not found:
        raise Refused('%s: no Korora migration of it is in flight' % what)
    if len(found) > 1:
        raise Refused('%s: %d Korora migrations of it are in flight (%s)'
                      % (what, len(found),
                         ', '.join(record.uuid for record in found)))
    record = found[0]
    if record.dest_host != host:
        raise Refused('%s: Korora migration %s of it goes from %s to %s'
                      % (what, record.uuid, record.source_host,
                         record.dest_host))
    if record.state != states.TRANSFERRING:
        why = _NOT_YET.get(record.state)
        if why is None and record.state not in states.ALL:
            why = '%r is not a migration state' % record.state
        raise Refused('%s: Korora migration %s from %s is %s (%s)'
                      % (what, record.uuid, record.source_host,
                         record.state, why or 'not TRANSFERRING'))
    return record


def decide(xml, host, require_for_all, load_records):
    """Pass (return a one-line summary) or raise Refused.

    xml: the incoming domain XML (bytes); load_records(instance_uuid):
    the instance's in-flight migration records, called only when the
    domain needs an approval.
    """
    from korora_nova.hypervisors import domain_xml

    try:
        facts = domain_xml.facts_from_xml(xml)
    except domain_xml.DomainXMLError as error:
        raise Refused('the incoming domain XML is refused: %s' % error)
    instance_uuid = instance_uuid_of(facts)
    if not needs_approval(facts, require_for_all):
        return 'instance %s has no TPM: no approval needed' % instance_uuid
    record = check_records(load_records(instance_uuid), instance_uuid, host)
    return ('instance %s: Korora migration %s from %s to %s is %s'
            % (instance_uuid, record.uuid, record.source_host,
               record.dest_host, record.state))


# The process: deadline, file descriptors, configuration, database.

class Deadline:
    """Ends the process with status 1 and a "timed out" line unless it
    finished first; once it finished, with its own status."""

    def __init__(self, err_fd, started):
        self.err_fd = err_fd
        self.started = started
        self.limit = None
        self.status = None
        self._lock = threading.Lock()
        self._timer = None

    def arm(self, limit):
        """Expire limit seconds after the start (re-arming moves it)."""
        self.limit = limit
        if self._timer is not None:
            self._timer.cancel()
        remaining = max(0.0, self.started + limit - time.monotonic())
        self._timer = threading.Timer(remaining, self._expire)
        self._timer.daemon = True
        self._timer.start()
        # The backstop: SIGALRM's default action ends the process even
        # if the timer thread never gets to run.
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(math.ceil(remaining)) + ALARM_BACKSTOP)

    def remaining(self):
        return max(0.0, self.started + self.limit - time.monotonic())

    def _expire(self):
        with self._lock:
            if self.status is None:
                self.status = EXIT_REFUSE
                write_line(self.err_fd, PREFIX + one_line(
                    'the libvirt hook timed out after %.1f s ([korora] '
                    'libvirt_hook_timeout): the incoming migration is '
                    'refused' % self.limit))
                try:
                    LOG.error('timed out after %.1f s', self.limit)
                except Exception:
                    pass
            os._exit(self.status)

    def finish(self, status, line=None):
        """Decide: write line (if any) unless the deadline came first."""
        with self._lock:
            if self.status is not None:
                return self.status
            self.status = status
            if line is not None:
                write_line(self.err_fd, line)
            return status


def write_line(fd, line):
    data = (line + '\n').encode('utf-8', 'replace')
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass        # nobody listens: the status still says it


def silence_standard_streams():
    """Point fds 1 and 2 at /dev/null; returns a copy of the original
    stderr for the one line the hook writes."""
    err_fd = os.dup(2)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
    finally:
        os.close(null)
    return err_fd


def read_stdin(limit=MAX_XML_BYTES, fd=0):
    """At most limit bytes from fd, until its end; more is refused."""
    from korora_nova.hypervisors import base

    try:
        data = base.read_fd(os.dup(fd), limit, 'stdin',
                            'the domain XML')
    except (base.InstanceStateError, OSError) as error:
        raise Refused(str(error))
    if not data.strip():
        raise Refused('no domain XML on stdin')
    return data


def load_config(conf, args):
    """Parse options args and the configuration files; returns (host,
    require_for_all, timeout)."""
    from oslo_config import cfg
    from oslo_log import log as oslo_logging

    from korora_nova import conf as korora_conf

    korora_conf.register_host_opt(conf)
    oslo_logging.register_options(conf)
    # Nothing may reach stdout, and stderr gets our line alone (both
    # are /dev/null by now: this keeps oslo.log from using them).
    conf.set_default('use_stderr', False)
    try:
        conf(args, project='korora', prog=PROG)
    except SystemExit as error:     # argparse, on a bad command line
        raise Refused('cannot load the configuration: bad options %s '
                      '(exit %s)' % (' '.join(args), error.code))
    except cfg.Error as error:
        raise Refused('cannot load the configuration: %s' % error)
    try:
        host = conf.host
        require_for_all = conf.korora.libvirt_hook_require_approval_for_all
        timeout = conf.korora.libvirt_hook_timeout
        conf.korora_database.connection
    except (cfg.Error, ValueError) as error:
        raise Refused('cannot load the configuration: %s' % error)
    if not host:
        raise Refused('cannot load the configuration: [DEFAULT] host is '
                      'empty')
    return host, require_for_all, timeout


def setup_logging(conf):
    from oslo_log import log as oslo_logging

    try:
        oslo_logging.setup(conf, 'korora')
    except Exception as error:
        raise Refused('cannot set up logging: %s' % error)


def bounded_url(url, seconds):
    """url with driver timeouts a little beyond seconds (backstops of
    the deadline): connect and I/O for MySQL, connect for PostgreSQL,
    the lock wait for SQLite. An operator's own values stay."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, TypeError, ValueError) as error:
        raise Refused('the [korora_database] connection is not a '
                      'database URL: %s' % one_line(error, 200))
    whole = int(math.ceil(seconds)) + 1
    backend = parsed.get_backend_name()
    if backend in ('mysql', 'mariadb'):
        wanted = {'connect_timeout': whole, 'read_timeout': whole,
                  'write_timeout': whole}
    elif backend == 'postgresql':
        wanted = {'connect_timeout': max(2, whole)}
    elif backend == 'sqlite':
        wanted = {'timeout': max(0.1, seconds)}
    else:
        return url
    query = dict(parsed.query)
    for key, value in wanted.items():
        query.setdefault(key, str(value))
    return parsed.set(query=query).render_as_string(hide_password=False)


def load_records(conf, deadline):
    """records.in_flight_for_instance, against [korora_database] with
    bounded driver timeouts; any failure refuses."""

    def load(instance_uuid):
        from korora_nova.db import api as db
        from korora_nova.migration import records

        url = conf.korora_database.connection
        conf.set_override('connection',
                          bounded_url(url, deadline.remaining()),
                          group='korora_database')
        try:
            return records.in_flight_for_instance(instance_uuid)
        except Exception as error:
            LOG.warning('cannot read the migration records: %s', error,
                        exc_info=True)
            detail = str(error).strip().splitlines()
            raise Refused('cannot read the Korora migration records from '
                          'the verifier database %s: %s: %s' % (
                              db.safe_url(url), type(error).__name__,
                              one_line(detail[0] if detail else '', 300)))
    return load


def process_started():
    """time.monotonic() when this process started (Linux: from
    /proc/self/stat and CLOCK_BOOTTIME), or now if unknown."""
    now = time.monotonic()
    try:
        with open('/proc/self/stat', 'rb') as stream:
            stat = stream.read(4096)
        # Fields after the command name "(...)"; starttime is field 22.
        fields = stat[stat.rindex(b')') + 2:].split()
        started = int(fields[19]) / os.sysconf('SC_CLK_TCK')
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0 <= age < 3600 else now


def run(argv, started=None, conf=None):
    """The hook; argv without the program name. Returns the status."""
    started = process_started() if started is None else started
    if len(argv) >= 4 and (argv[-3], argv[-2]) != ('migrate', 'begin'):
        return EXIT_PASS
    from korora_nova.conf import korora as korora_options

    err_fd = silence_standard_streams()
    deadline = Deadline(err_fd, started)
    # The limit until the configuration is read.
    deadline.arm(korora_options.LIBVIRT_HOOK_TIMEOUT)
    if len(argv) < 4:
        return deadline.finish(EXIT_REFUSE, PREFIX + one_line(
            'usage: %s [oslo.config options] DOMAIN OPERATION '
            'SUB_OPERATION EXTRA (as libvirt runs hooks)' % PROG))
    options, name = argv[:-4], argv[-4]
    shown = one_line(name, MAX_NAME)
    logging_ready = False
    reason = None
    try:
        if conf is None:
            from oslo_config import cfg

            conf = cfg.CONF
        host, require_for_all, timeout = load_config(conf, options)
        deadline.arm(timeout)
        setup_logging(conf)
        logging_ready = True
        xml = read_stdin()
        summary = decide(xml, host, require_for_all,
                         load_records(conf, deadline))
    except Refused as refused:
        reason = one_line(refused)
    except BaseException as error:
        if logging_ready:
            LOG.exception('incoming live migration of domain %s: '
                          'unexpected error', shown)
        reason = one_line('unexpected error in the libvirt hook: %s: %s'
                          % (type(error).__name__, error))
    if reason is not None:
        if logging_ready:
            LOG.warning('incoming live migration of domain %s refused: %s',
                        shown, reason)
        return deadline.finish(EXIT_REFUSE, PREFIX + one_line(
            'incoming live migration of domain %s refused: %s'
            % (shown, reason)))
    LOG.info('incoming live migration of domain %s admitted: %s',
             shown, summary)
    return deadline.finish(EXIT_PASS)


def main(argv=None):
    """Console entry: the process's status."""
    return run(sys.argv[1:] if argv is None else argv)
