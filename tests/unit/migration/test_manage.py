"""korora-manage audit and migration commands, as an operator runs them.

The console script runs in a process of its own, with a configuration
file naming the test's SQLite database; what is checked is its output,
its exit status (0 intact/success, 1 tampered/failed, 2 usage error) and
that an error is one line on stderr, never a traceback.
"""

import os
import subprocess
import sys

import fixtures


from korora_nova.db import api as db
from korora_nova.db import audit_log
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from tests import base
from korora_nova.demo import services
from korora_nova.verifier import enrollment
from korora_nova.rpcapi import vtpm_manager as rpcapi

KORORA_MANAGE = os.path.join(os.path.dirname(sys.executable),
                             'korora-manage')
COMMAND_TIMEOUT = 60
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'
OTHER = 'c4a1f2e3-9b8d-4e7f-8a6b-1d2e3f4a5b6c'


class ManageTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(services.VerifierDatabaseFixture())
        keys = services.verifier_keys(self)
        folder = self.useFixture(fixtures.TempDir()).path
        self.config_file = os.path.join(folder, 'korora.conf')
        with open(self.config_file, 'w') as stream:
            stream.write('[DEFAULT]\n'
                         'transport_url = fake:/\n'
                         '[korora]\n'
                         'attestation_timeout = 0.5\n'
                         'verifier_signing_key = %s\n'
                         '[korora_database]\n'
                         'connection = sqlite:///%s\n'
                         % (keys.private_path, self.database.path))

    def manage(self, *arguments):
        """Run korora-manage; returns (exit status, stdout, stderr)."""
        result = subprocess.run(
            [KORORA_MANAGE, '--config-file', self.config_file] +
            list(arguments), capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT)
        self.assertNotIn('Traceback', result.stderr)
        self.assertNotIn('Traceback', result.stdout)
        return result.returncode, result.stdout, result.stderr

    def migrate(self, migration_uuid, to, source='compute-1',
                dest='compute-2', reason=None):
        """Record a migration and move it along the forward chain to to,
        or up to MEASURED and then to to when to is not on it."""
        records.create(migration_uuid, INSTANCE, source, dest)
        last = to if to in states.FORWARD else states.MEASURED
        for state in states.FORWARD[1:states.FORWARD.index(last) + 1]:
            records.transition(migration_uuid, dest, state, details={
                'evidence': b'quote for ' + state.encode()})
        if to != last:
            records.transition(migration_uuid, source, to, reason=reason)

    def execute(self, statement):
        with db.get_engine().begin() as connection:
            connection.exec_driver_sql(statement)


class TestMigrationCommands(ManageTestCase):

    def test_empty_database(self):
        status, out, err = self.manage('migration', 'list')
        self.assertEqual(0, status, err)
        self.assertEqual(['UUID', 'INSTANCE', 'SOURCE', '->', 'DEST',
                          'STATE', 'UPDATED'], out.split())
        status, out, err = self.manage('audit', 'verify')
        self.assertEqual(0, status, err)
        self.assertEqual('audit log: no entries\nanchors: none\nintact\n',
                         out)

    def test_list_and_show(self):
        self.migrate(MIGRATION, states.COMMITTED)
        self.migrate(OTHER, states.ABORTED, source='compute-2',
                     dest='compute-3', reason='destination is untrusted')
        status, out, err = self.manage('migration', 'list')
        self.assertEqual(0, status, err)
        lines = out.splitlines()
        self.assertEqual(3, len(lines))
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        self.assertEqual([MIGRATION, INSTANCE, 'compute-1', '->',
                          'compute-2', 'COMMITTED'], rows[MIGRATION][:6])
        self.assertEqual([OTHER, INSTANCE, 'compute-2', '->', 'compute-3',
                          'ABORTED'], rows[OTHER][:6])

        status, out, err = self.manage('migration', 'show', MIGRATION)
        self.assertEqual(0, status, err)
        self.assertIn('migration:      %s\n' % MIGRATION, out)
        self.assertIn('source -> dest: compute-1 -> compute-2\n', out)
        self.assertIn('state:          COMMITTED (final)\n', out)
        states_part = out.split('states:\n')[1].split(
            'integrity manifest:')[0]
        # These records carry no manifest (the hooks' tests show one).
        self.assertIn('integrity manifest:\n  none (the source measures '
                      'when the transfer ends)\n', out)
        self.assertEqual(list(states.FORWARD),
                         [line.split()[1]
                          for line in states_part.splitlines()])
        self.assertIn('by compute-2 (verify-arrival)', states_part)
        entries = out.split('audit entries:\n')[1]
        self.assertEqual(7, entries.count('  intact\n'))
        self.assertIn('  seq 5  ', entries)
        self.assertIn('transfer  KEY_CERTIFIED -> TRANSFERRING  intact',
                      entries)
        self.assertIn('measure  TRANSFERRING -> MEASURED  intact', entries)
        self.assertLess(entries.index('  seq 4  '),
                        entries.index('transfer  KEY_CERTIFIED'))
        self.assertLess(entries.index('transfer  KEY_CERTIFIED'),
                        entries.index('  seq 5  '))
        self.assertLess(entries.index('  seq 5  '),
                        entries.index('measure  TRANSFERRING'))
        self.assertIn(audit_log.digest(b'quote for MEASURED'), entries)

        status, out, err = self.manage('migration', 'show', OTHER)
        self.assertEqual(0, status, err)
        self.assertIn('state:          ABORTED (final)\n', out)
        self.assertIn('reason:         destination is untrusted\n', out)
        self.assertIn('"reason":"destination is untrusted"', out)

    def test_show_in_flight(self):
        self.migrate(MIGRATION, states.TRANSFERRING)
        self.migrate(OTHER, states.MEASURED)
        status, out, err = self.manage('migration', 'show', MIGRATION)
        self.assertEqual(0, status, err)
        self.assertIn('state:          TRANSFERRING (in flight; recovery: '
                      'finish)\n', out)
        status, out, err = self.manage('migration', 'show', OTHER)
        self.assertEqual(0, status, err)
        self.assertIn('state:          MEASURED (in flight; recovery: '
                      'verify)\n', out)

    def test_unknown_migration_is_a_usage_error(self):
        status, out, err = self.manage('migration', 'show', MIGRATION)
        self.assertEqual(2, status)
        self.assertEqual('', out)
        self.assertEqual('korora-manage: no migration %s\n' % MIGRATION,
                         err.splitlines(True)[-1])

    def test_tampered_log(self):
        self.migrate(MIGRATION, states.VERIFIED)
        status, out, err = self.manage('audit', 'verify')
        self.assertEqual(0, status, err)
        self.assertIn('warning: no entry is anchored by a TPM yet: 6 '
                      'entries could be rewritten unnoticed\n', out)
        self.assertTrue(out.endswith('intact\n'))
        self.execute(
            "UPDATE audit_log SET to_state = 'COMMITTED' WHERE seq = 6")
        status, out, err = self.manage('audit', 'verify')
        self.assertEqual(1, status, err)
        self.assertIn('TAMPERED: 1 problem, the first at seq 6\n', out)
        self.assertIn('  seq 6: entry 6 was changed: its content hashes to ',
                      out)
        status, out, err = self.manage('migration', 'show', MIGRATION)
        self.assertEqual(0, status, err)
        self.assertIn('verify-arrival  MEASURED -> COMMITTED  CHANGED: its '
                      'content does not match its hash', out)

    def test_bad_head_and_unknown_host(self):
        status, out, err = self.manage('audit', 'verify', '--head', '3:zz')
        self.assertEqual(2, status)
        self.assertIn('korora-manage: --head \'3:zz\' is not SEQ:HASH', err)
        self.migrate(MIGRATION, states.REQUESTED)
        status, out, err = self.manage('audit', 'anchor', 'compute-9')
        self.assertEqual(2, status)
        self.assertEqual('korora-manage: host compute-9 is not enrolled\n',
                         err.splitlines(True)[-1])


class TestAnchoredLogCommands(ManageTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(self.config.conf))
        tpm = self.useFixture(services.SoftwareTPMFixture())
        self.flags(ek_ca_bundle=tpm.ca_bundle)
        self.useFixture(services.VTPMManagerFixture('compute-1', tpm))
        self.api = rpcapi.VTPMManagerAPI()
        enrollment.enroll(self.api, 'compute-1')

    def test_verify_anchor_and_truncation(self):
        self.migrate(MIGRATION, states.COMMITTED)
        anchor = audit.anchor(self.api, 'compute-1')
        head = audit.head_entry()
        status, out, err = self.manage('audit', 'verify')
        self.assertEqual(0, status, err)
        self.assertEqual(
            'audit log: 8 entries (seq 1..8), head %s\n'
            'anchors: 1, the last at seq 8 by compute-1\'s TPM\n'
            'intact\n' % head.entry_hash, out)
        recorded = '%d:%s' % (anchor.seq, head.entry_hash)
        status, out, err = self.manage('audit', 'verify', '--head', recorded)
        self.assertEqual(0, status, err)

        # The head is anchored already: nothing to ask the TPM.
        status, out, err = self.manage('audit', 'anchor', 'compute-1')
        self.assertEqual(0, status, err)
        self.assertIn('audit log anchored at seq 8 (entry hash %s) by '
                      'compute-1\'s TPM at ' % head.entry_hash, out)
        self.assertIn('keep "%s" outside the database' % recorded, out)

        # A new head: this process's vTPM manager is out of the command's
        # reach (in-process transport), which it reports.
        self.migrate(OTHER, states.ABORTED)
        status, out, err = self.manage('audit', 'anchor', 'compute-1')
        self.assertEqual(1, status)
        self.assertEqual('korora-manage: compute-1: the vTPM manager did '
                         'not answer within 0.5 s\n',
                         err.splitlines(True)[-1])

        self.execute('DELETE FROM audit_log WHERE seq >= 7')
        status, out, err = self.manage('audit', 'verify')
        self.assertEqual(1, status, err)
        self.assertIn('TAMPERED: 1 problem, the first at seq 8\n', out)
        self.assertIn('  seq 8: the log ends at seq 6 but compute-1\'s TPM '
                      'anchored entry 8: entries 7..8 are missing (the log '
                      'was truncated)\n', out)
        status, out, err = self.manage('audit', 'anchor', 'compute-1')
        self.assertEqual(1, status)
        self.assertIn('korora-manage: the audit log fails verification, not '
                      'anchoring it: seq 8: the log ends at seq 6', err)
