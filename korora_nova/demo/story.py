"""korora-demo's story, told by one test method of the in-process cloud.

A vTPM server boots and live-migrates to a trusted host; a host whose
measurements changed is refused; a transfer tampered with in flight is
quarantined; then the timelines of the three migrations and the audit
log. Every outcome is checked: the first one that is not as expected
ends the story (DemoFailure, one line).
"""

# Nova's functional package monkey-patches eventlet on import: first.
from korora_nova.demo import cloud

import contextlib
import importlib.metadata
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

from novaclient import exceptions as nova_exceptions

from korora_nova.db import api as db
from korora_nova.demo import runner
from korora_nova.hypervisors import file_backend
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states

SOURCE, DEST, CHANGED = cloud.HOSTS
#: Nova's power state of a paused guest.
PAUSED = 3
#: What korora-manage needs to read the copy of the verifier database
#: and judge its policies (the operator's public key).
CONFIG = ('[korora]\npolicy_signing_keys = %s\n'
          '[korora_database]\nconnection = sqlite:///%s\n')
WIDTH = 78


class DemoFailure(AssertionError):
    """An outcome of the demo was not the expected one."""


def say(text=''):
    runner.say(text)


def detail(label, text):
    """'   label: text', wrapped below the text's start."""
    head = '   %s: ' % label if label else '   '
    say(textwrap.fill(text, WIDTH, initial_indent=head,
                      subsequent_indent=' ' * len(head),
                      break_long_words=False, break_on_hyphens=False))


def heading(number, text):
    say()
    say('%d. %s' % (number, text))


def manage_command():
    """How to run korora-manage from this Python environment."""
    script = os.path.join(os.path.dirname(sys.executable), 'korora-manage')
    return script if os.path.exists(script) else 'korora-manage'


class MigrationDemo(cloud.KororaCloud):
    """The cloud with Kororā on, and the story as its one test method."""

    #: Set by run(): the folder that keeps the copy of the verifier
    #: database and its configuration after the demo.
    workdir = None

    def setUp(self):
        self.started = time.monotonic()
        heading(1, 'A small cloud: Nova %s\'s own services in this process'
                % importlib.metadata.version('nova'))
        detail(None, 'API, conductor, scheduler (with TrustedVTPMFilter) and '
               'three compute hosts running Kororā\'s live-migration hooks; '
               'each host has its own software TPM (swtpm) and vTPM '
               'manager; the verifier keeps its database in SQLite.')
        super().setUp()
        self.stages = []
        trust = db.host_trust_all()
        for host in self.COMPUTE_HOSTS:
            summary = trust[host][1]
            if summary.startswith(host + ': '):
                summary = summary[len(host) + 2:]
            detail(host, 'enrolled (%s certificate chained to the local CA, '
                   'AK bound to it by credential activation), attested: %s'
                   % (db.host_get(host).ek_type, summary))
        detail('policy', '%s v1: the PCR values %s quoted when the cloud '
               'started' % (cloud.POLICY, SOURCE))
        self.note_time()

    def note_time(self):
        say('   (at %.1f s)' % (time.monotonic() - self.started))

    def expect(self, condition, reason):
        if not condition:
            raise DemoFailure(reason)

    def test_story(self):
        server = self.boot()
        rows = [self.migrate_to_trusted_host(server)]
        self.refuse_changed_host(server)
        rows.append(self.quarantine_tampered_transfer(server))
        self.show_timelines(rows)
        self.check_audit_log()

    # 2. Boot

    def boot(self):
        heading(2, 'A vTPM server boots on %s' % SOURCE)
        server = self.boot_server(self.vtpm_flavor, name='demo-vtpm',
                                  host=SOURCE)
        self.expect(self.server_host(server) == SOURCE,
                    'the server booted on %s, not on %s'
                    % (self.server_host(server), SOURCE))
        self.expect(self.hosts_with_state(server) == [SOURCE],
                    'the vTPM files of the server are not on %s' % SOURCE)
        self.secret = self.driver(SOURCE).vtpm_secrets.get(server['id'])
        self.expect(self.secret is not None,
                    '%s holds no vTPM secret for the server' % SOURCE)
        detail('server', '%s (%s), ACTIVE on %s'
               % (server['name'], server['id'], SOURCE))
        detail('flavor', ', '.join('%s=%s' % item for item in sorted(
            cloud.nova_cloud.VTPM_EXTRA_SPECS.items())))
        detail('vTPM files', 'state, NVRAM and domain XML on %s; the vTPM '
               'secret in %s\'s (fake) libvirt' % (SOURCE, SOURCE))
        return server

    # 3. To a trusted host

    def migrate_to_trusted_host(self, server):
        heading(3, 'Live migration to a trusted host: %s -> %s'
                % (SOURCE, DEST))
        detail('request', 'POST /servers/%s/action os-migrateLive host=%s '
               '(microversion latest: the scheduler checks %s, '
               'TrustedVTPMFilter included)' % (server['id'], DEST, DEST))
        known = self.record_uuids(server)
        migration = self.live_migrate_api(server, host=DEST)
        self.expect(migration['status'] == 'completed',
                    'the migration to %s ended %s, not completed'
                    % (DEST, migration['status']))
        found = self.wait_for_server(server, 'ACTIVE', host=DEST)
        record = self.wait_for_new_final_record(server, known)
        self.expect(record.state == states.COMMITTED,
                    'Kororā recorded the migration to %s as %s, not '
                    'COMMITTED (%s)' % (DEST, record.state, record.reason))
        steps = [entry.to_state for entry in records.history(record.uuid)]
        self.expect(steps == list(states.FORWARD),
                    'the migration went through %s, not through every step'
                    % ' -> '.join(steps))
        self.expect(self.hosts_with_state(server) == [DEST],
                    'the vTPM files are on %s, not on %s alone' % (
                        ', '.join(self.hosts_with_state(server)), DEST))
        self.expect(self.driver(DEST).vtpm_secrets.get(server['id']) ==
                    self.secret,
                    '%s does not hold the vTPM secret %s had' % (DEST, SOURCE))
        detail('Nova', 'migration %s completed; server %s on %s'
               % (migration['id'], found['status'], DEST))
        detail('Kororā', '%s: both hosts attested, the vTPM secret sealed to '
               'a key certified by %s\'s TPM, the manifest signed by %s\'s '
               'TPM verified on arrival, the source\'s copy removed'
               % (record.state, DEST, SOURCE))
        self.note_time()
        return record

    # 4. A changed host

    def refuse_changed_host(self, server):
        heading(4, 'A host whose measurements changed is refused: %s'
                % CHANGED)
        changed_at = time.monotonic()
        self.change_host(CHANGED)
        detail('on %s' % CHANGED, 'an unexpected measurement is extended '
               'into PCR 10 of its TPM (through its vTPM manager)')
        entry = self.wait_for_trust(CHANGED, False)
        detail('verifier', '%s (after %.1f s: the manager saw its PCRs '
               'change and asked for an attestation)'
               % (entry[1], time.monotonic() - changed_at))
        detail('request', 'python-novaclient servers.live_migrate(host=%s) '
               'at microversion 2.1, as Horizon\'s "Live Migrate Instance" '
               'sends it: a named host skips the scheduler and its filters'
               % CHANGED)
        known = self.record_uuids(server)
        try:
            self.live_migrate_novaclient(server, host=CHANGED,
                                         microversion='2.1')
        except nova_exceptions.ClientException as error:
            refusal = error
        else:
            raise DemoFailure('the live migration to %s was not refused'
                              % CHANGED)
        message = str(refusal)
        self.expect('Korora: the destination host is not trusted' in message,
                    'the refusal does not give Kororā\'s reason: %s'
                    % message)
        found = self.wait_for_server(server, 'ACTIVE')
        self.expect(found['OS-EXT-SRV-ATTR:host'] == DEST,
                    'the server is on %s after the refusal, not on %s'
                    % (found['OS-EXT-SRV-ATTR:host'], DEST))
        # The changed host's own signed request quoted PCRs its policy
        # does not allow: the verifier opened no migration record.
        self.expect(self.record_uuids(server) == known,
                    'Kororā opened a migration record to %s' % CHANGED)
        self.expect(self.hosts_with_state(server) == [DEST],
                    'vTPM files reached %s' % CHANGED)
        detail('refused', 'HTTP %s: %s' % (refusal.code, refusal.message))
        detail('server', '%s, still on %s; nothing reached %s'
               % (found['status'], DEST, CHANGED))
        detail('Kororā', 'no migration record: the verifier refused the '
               'migration request %s\'s TPM signed, before anything else '
               'was asked of either host' % CHANGED)
        self.note_time()

    # 5. Tampering in flight

    def quarantine_tampered_transfer(self, server):
        heading(5, 'A transfer tampered with in flight is quarantined: '
                '%s -> %s' % (DEST, SOURCE))
        flipped = {}

        def in_flight(name, data):
            if name != file_backend.STATE_FILE or not data:
                return data
            where = len(data) // 2
            flipped['at'], flipped['size'] = where, len(data)
            return data[:where] + bytes([data[where] ^ 0xff]) + (
                data[where + 1:])

        self.driver(DEST).in_flight = in_flight
        known = self.record_uuids(server)
        try:
            migration = self.live_migrate_api(server, host=SOURCE)
        finally:
            self.driver(DEST).in_flight = None
        self.expect(flipped, 'the vTPM state file never crossed')
        detail('in flight', 'byte %d of the %d-byte vTPM state file (%s) is '
               'flipped while it crosses to %s'
               % (flipped['at'], flipped['size'], file_backend.STATE_FILE,
                  SOURCE))
        self.expect(migration['status'] == 'error',
                    'the tampered migration ended %s, not error'
                    % migration['status'])
        found = self.wait_for_server(server, 'ERROR')
        self.expect(found['OS-EXT-SRV-ATTR:host'] == SOURCE,
                    'the quarantined server is on %s, not on %s'
                    % (found['OS-EXT-SRV-ATTR:host'], SOURCE))
        self.expect(found['OS-EXT-STS:power_state'] == PAUSED,
                    'the quarantined server is not paused (power state %s)'
                    % found['OS-EXT-STS:power_state'])
        fault = self.server_fault(server, admin=True) or {}
        message = fault.get('message', '')
        self.expect('quarantined' in message and 'vtpm-state' in message,
                    'the server\'s fault does not name vtpm-state: %r'
                    % message)
        record = self.wait_for_new_final_record(server, known)
        self.expect(record.state == states.QUARANTINED and
                    'vtpm-state' in (record.reason or ''),
                    'Kororā recorded the tampered migration as %s (%s), not '
                    'QUARANTINED for vtpm-state' % (record.state,
                                                    record.reason))
        self.expect(self.hosts_with_state(server) == [SOURCE, DEST],
                    'the vTPM files are on %s, not on %s (held) and %s '
                    '(kept)' % (', '.join(self.hosts_with_state(server)),
                                SOURCE, DEST))
        detail('Nova', 'migration %s: %s; server %s, paused, held on %s'
               % (migration['id'], migration['status'], found['status'],
                  SOURCE))
        detail('fault', message)
        detail('Kororā', '%s: %s' % (record.state, record.reason))
        detail('kept', 'the source\'s copy stays on %s for the operator'
               % DEST)
        self.note_time()
        return record

    # 6. Timelines

    def show_timelines(self, rows):
        heading(6, 'The timelines, as "korora-manage migration show UUID" '
                'prints them')
        detail(None, '(without each audit entry\'s hash and details lines)')
        _path, config = self.keep_database()
        for row in rows:
            shown = subprocess.run(
                [sys.executable, '-m', 'korora_nova.cmd.manage',
                 '--config-file', config, 'migration', 'show', row.uuid],
                capture_output=True, text=True, timeout=60)
            self.expect(shown.returncode == 0, 'korora-manage migration '
                        'show %s: exit %d: %s' % (row.uuid, shown.returncode,
                                                  shown.stderr.strip()))
            say()
            for line in shown.stdout.splitlines():
                if not line.startswith(('    hash ', '    details ')):
                    say('   ' + line)

    # 7. The audit log

    def check_audit_log(self):
        heading(7, 'The audit log')
        anchor = audit.anchor(self.manager_api, SOURCE)
        detail('anchored', 'the head (seq %d) signed by %s\'s TPM'
               % (anchor.seq, anchor.host))
        report = audit.verify()
        say('   audit.verify():')
        for line in report.summary():
            say('     ' + line)
        self.expect(report.ok, 'audit.verify() found the log tampered: %s'
                    % report.first_problem)
        self.expect(not report.warnings, 'audit.verify() warns: %s'
                    % '; '.join(report.warnings))
        path, config = self.keep_database()
        command = [manage_command(), '--config-file', config, 'audit',
                   'verify']
        detail('where', '%s: a copy of the verifier database (tables '
               'migrations, audit_log, audit_anchors), kept after the demo'
               % path)
        detail('check it', ' '.join(command))
        checked = subprocess.run(
            [sys.executable, '-m', 'korora_nova.cmd.manage'] + command[1:],
            capture_output=True, text=True, timeout=60)
        said = checked.stdout.strip().splitlines()
        self.expect(checked.returncode == 0 and said[-1:] == ['intact'],
                    'korora-manage audit verify on the copy: exit %d, %s'
                    % (checked.returncode, (said or ['no output'])[-1]))
        detail(None, '(run just now: it says "intact")')
        self.note_time()

    def keep_database(self):
        """Copy the verifier database (SQLite's online backup: consistent
        while the services still write) and a configuration for
        korora-manage into the work folder."""
        path = os.path.join(self.workdir, 'korora.sqlite')
        config = os.path.join(self.workdir, 'korora.conf')
        with contextlib.closing(sqlite3.connect(self.database.path)) as live:
            with contextlib.closing(sqlite3.connect(path)) as copy:
                live.backup(copy)
        with open(config, 'w') as stream:
            stream.write(CONFIG % (self.operator.public_path, path))
        return path, config


def run(workdir, log_path):
    """Tell the story; returns None, or the one-line reason it failed."""
    MigrationDemo.workdir = workdir
    return runner.run_case(MigrationDemo('test_story'), log_path)
