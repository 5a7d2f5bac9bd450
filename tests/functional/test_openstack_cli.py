"""``openstack korora ...``: the real ``openstack`` console script, as a
process, against korora-api behind a real Keystone.

One bed for the class (api_server.KeystoneCloudFixture): Keystone on
SQLite and korora-api in child processes, the verifier in this process on
a real RabbitMQ node, two vTPM managers on swtpm. The class imports the
policy and enrolls both hosts through the CLI first; every test then
runs the commands an operator runs, with the persona's credentials in
OS_* variables as ``openrc`` sets them, and reads what they print.
Installed entry points decide which commands exist: the tree must be
installed (``pip install -e .``, as tools/quickstart.sh does).
"""

import datetime
import json
import os
import subprocess
import sys

import fixtures
import jwt
from oslotest import base

from korora_nova.attestation import operator_answers
from korora_nova.attestation import pcr_values as pcr_module
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import results
from korora_nova.db import api as db
from korora_nova.db import models
from korora_nova.verifier import admin
from tests.fixtures import api as api_fixtures
from tests.fixtures import api_server
from tests.fixtures import forged_answers
from tests.fixtures import daemons
from tests.fixtures import keystone
from tests.fixtures import raw_sql

HOSTS = api_server.HOSTS
POLICY = 'compute-2026-12'
STRICT = 'strict-2026-12'
RECORDED = 'recorded-2026-12'
CLI_TIMEOUT = 120


class TestOpenStackKorora(base.BaseTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bed = fixtures.Fixture()
        cls.bed.setUp()
        try:
            cls._make_cloud()
        except BaseException:
            cls.bed.cleanUp()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.bed.cleanUp()
        super().tearDownClass()

    @classmethod
    def _make_cloud(cls):
        cls.cloud = cls.bed.useFixture(api_server.KeystoneCloudFixture())
        cls.folder = cls.bed.useFixture(fixtures.TempDir()).path
        cls.operator_key = cls.cloud.operator.private_path
        cls.imported = cls.run_cli(
            'korora', 'policy', 'import', cls.policy_file(POLICY, 1),
            '--signing-key', cls.operator_key, '-f', 'json')
        cls.enrolled = {host: cls.run_cli(
            'korora', 'host', 'enroll', host, '--policy', POLICY,
            '-f', 'json') for host in HOSTS}
        cls.records = api_fixtures.make_migrations(HOSTS)

    @classmethod
    def policy_file(cls, name, version, values=None):
        reference = policy_module.from_values(
            name, version, values or cls.cloud.pcr_values)
        path = os.path.join(cls.folder, '%s-v%d.json' % (name, version))
        with open(path, 'w') as stream:
            json.dump(reference.to_json(), stream)
        return path

    @classmethod
    def openstack(cls, *args, persona='admin', scope=None, pinned=True):
        """The openstack command as persona (openrc's OS_* variables;
        pinned: with the verifier's public key); the finished process."""
        environment = {name: value for name, value in os.environ.items()
                       if not name.startswith('OS_')}
        environment.update(
            ('OS_%s' % name.upper(), value) for name, value in
            cls.cloud.keystone.auth_args(persona, scope).items())
        environment.update(
            OS_IDENTITY_API_VERSION='3', OS_REGION_NAME=keystone.REGION,
            OS_INTERFACE='public', XDG_CONFIG_HOME=cls.folder,
            PYTHONPATH=os.pathsep.join(sys.path))
        if pinned:
            environment['OS_KORORA_VERIFIER_PUBLIC_KEY'] = (
                cls.cloud.verifier_public_key)
        return subprocess.run(
            [daemons.console_script('openstack')] + list(args),
            env=environment, capture_output=True, text=True,
            timeout=CLI_TIMEOUT)

    @classmethod
    def run_cli(cls, *args, **kwargs):
        """stdout of a command that must succeed; JSON decoded with -f
        json."""
        result = cls.openstack(*args, **kwargs)
        if result.returncode != 0:
            raise AssertionError('openstack %s: exit %d: %s' % (
                ' '.join(args), result.returncode, result.stderr))
        return json.loads(result.stdout) if '-f' in args and args[
            args.index('-f') + 1] == 'json' else result.stdout

    def assertFails(self, result, *messages):
        """Exit 1 and one line on stderr naming messages, no traceback
        (a check's answer may be on stdout); that line."""
        self.assertEqual(1, result.returncode, result.stdout)
        self.assertEqual(1, len(result.stderr.strip().splitlines()),
                         result.stderr)
        self.assertNotIn('Traceback', result.stderr)
        for message in messages:
            self.assertIn(message, result.stderr)
        return result.stderr.strip()

    def host_names(self, persona):
        return [host['Name'] for host in self.run_cli(
            'korora', 'host', 'list', '-f', 'json', persona=persona)]

    def policy_versions(self):
        return [(item['Name'], item['Version'], item['Active'])
                for item in self.run_cli('korora', 'policy', 'list',
                                         '-f', 'json')]

    # Hosts.

    def test_enroll_prints_the_enrolled_host(self):
        for host in HOSTS:
            shown = self.enrolled[host]
            self.assertEqual(host, shown['name'])
            self.assertEqual(POLICY, shown['policy'])
            self.assertEqual('EK-RSA2048', shown['ek_type'])
            self.assertEqual(64, len(shown['ek_certificate_sha256']))
            self.assertFalse(shown['trust_on_first_use'])
        self.assertNotEqual(self.enrolled[HOSTS[0]]['ak_name'],
                            self.enrolled[HOSTS[1]]['ak_name'])

    def test_host_list(self):
        for host in HOSTS:
            self.cloud.verifier.attestor.attest(host)
        hosts = self.run_cli('korora', 'host', 'list', '-f', 'json')
        self.assertEqual(list(HOSTS), [host['Name'] for host in hosts])
        for host in hosts:
            summary = '%s: trusted under policy %s v1' % (host['Name'],
                                                          POLICY)
            self.assertEqual((POLICY, 'trusted', summary),
                             (host['Policy'], host['Trust'],
                              host['Summary']))
            self.assertGreaterEqual(host['Age Seconds'], 0)
            self.assertTrue(host['Verified At'].endswith('Z'))

    def test_attest_untrusted_then_trusted_with_set_policy(self):
        host = HOSTS[1]
        self.addCleanup(self.cloud.verifier.attestor.attest, host)
        self.addCleanup(admin.set_policy, host, POLICY)
        strict = self.run_cli(
            'korora', 'policy', 'import',
            self.policy_file(STRICT, 1, {'sha256': {10: b'\xff' * 32}}),
            '--signing-key', self.operator_key, '-f', 'json')
        self.assertEqual((STRICT, 1, True, True), (
            strict['name'], strict['version'], strict['active'],
            strict['signed']))
        self.assertEqual('', self.run_cli('korora', 'host', 'set', host,
                                          '--policy', STRICT))
        result = self.openstack('korora', 'host', 'attest', host,
                                '-f', 'json')
        self.assertFails(result, '%s is untrusted' % host)
        verdict = json.loads(result.stdout)
        self.assertFalse(verdict['trusted'])
        self.assertTrue(verdict['evidence_valid'])
        self.assertEqual(STRICT + ' v1', verdict['policy'])
        shown = self.run_cli('korora', 'host', 'show', host, '-f', 'json')
        self.assertEqual(('untrusted', STRICT), (shown['trust'],
                                                 shown['policy']))
        self.assertEqual(verdict['reasons'], shown['reasons'])
        self.assertTrue(any(reason.startswith('pcr-policy: %s: PCR '
                                              'sha256:10 = ' % host)
                            for reason in shown['reasons']),
                        shown['reasons'])
        self.assertFalse(shown['verdicts'][0]['trusted'])
        self.run_cli('korora', 'host', 'set', host, '--policy', POLICY)
        trusted = self.run_cli('korora', 'host', 'attest', host,
                               '-f', 'json')
        self.assertEqual((True, POLICY + ' v1', []), (
            trusted['trusted'], trusted['policy'], trusted['reasons']))

    def test_attest_now_audits_the_keystone_user(self):
        before = db.audit_head().seq
        self.run_cli('korora', 'host', 'attest', HOSTS[0], '-f', 'json')
        steps = [(entry.step, entry.host)
                 for entry in self.requested_by_admin(before)]
        self.assertEqual([('verdict', HOSTS[0])], steps)

    def test_server_trust(self):
        for host in HOSTS:
            self.cloud.verifier.attestor.attest(host)
        # The instance is on HOSTS[1] (its last migration committed).
        hosts = self.run_cli('korora', 'server', 'trust',
                             self.records['instance'], '-f', 'json')
        self.assertEqual([{'Host': HOSTS[0], 'Allowed': True,
                           'Reason': None}], hosts)
        moving = self.run_cli('korora', 'server', 'trust',
                              self.records['moving'], '-f', 'json')
        # In flight from HOSTS[1]: it may move nowhere else meanwhile.
        self.assertEqual([(HOSTS[0], False)],
                         [(h['Host'], h['Allowed']) for h in moving])
        self.assertTrue(all('of this instance is in flight' in h['Reason']
                            for h in moving), moving)

    def test_server_trust_refusals(self):
        self.assertFails(self.openstack('korora', 'server', 'trust',
                                        self.records['instance'],
                                        persona='project-reader'),
                         'korora:instances:trust', '(HTTP 403)')
        # A name needs Nova to resolve it; this cloud has none.
        self.assertFails(self.openstack('korora', 'server', 'trust',
                                        'no-such-server'),
                         'no server no-such-server')

    def test_policy_record_then_trusted_under_it(self):
        host = HOSTS[0]
        self.addCleanup(self.cloud.verifier.attestor.attest, host)
        self.addCleanup(admin.set_policy, host, POLICY)
        recorded = self.run_cli(
            'korora', 'policy', 'record', host, RECORDED,
            '--policy-version', '1', '--signing-key', self.operator_key,
            '-f', 'json')
        self.assertEqual((RECORDED, 1, True, True), (
            recorded['name'], recorded['version'], recorded['active'],
            recorded['signed']))
        # Exactly what the TPM quoted: [korora] quote_pcrs.
        self.assertEqual(
            policy_module.from_values(RECORDED, 1, self.cloud.pcr_values)
            .to_json(), recorded['document'])
        self.run_cli('korora', 'host', 'set', host, '--policy', RECORDED)
        verdict = self.run_cli('korora', 'host', 'attest', host,
                               '-f', 'json')
        self.assertEqual((True, RECORDED + ' v1'), (verdict['trusted'],
                                                    verdict['policy']))
        inactive = self.run_cli(
            'korora', 'policy', 'record', host, RECORDED,
            '--policy-version', '2', '--inactive', '--signing-key',
            self.operator_key, '-f', 'json')
        self.assertEqual((2, False), (inactive['version'],
                                      inactive['active']))

    def test_policy_record_refusals(self):
        before = self.policy_versions()
        self.assertFails(
            self.openstack('korora', 'policy', 'record', HOSTS[0], RECORDED,
                           '--policy-version', '9', '--signing-key',
                           self.cloud.stranger.private_path),
            'korora-api: policy %s version 9: not signed by a trusted '
            'operator key' % RECORDED, '(HTTP 400)')
        self.assertEqual(
            'korora-api: host compute-404 is not enrolled (HTTP 404)',
            self.assertFails(self.openstack(
                'korora', 'policy', 'record', 'compute-404', RECORDED,
                '--signing-key', self.operator_key)))
        self.assertFails(
            self.openstack('korora', 'policy', 'record', HOSTS[0], RECORDED,
                           '--signing-key', self.operator_key,
                           persona='system-reader'),
            'korora:hosts:quote', '(HTTP 403)')
        self.assertFails(
            self.openstack('korora', 'policy', 'record', HOSTS[0], RECORDED,
                           '--signing-key',
                           os.path.join(self.folder, 'no-such-key.pem')),
            'no-such-key.pem')
        # Without the verifier's key pinned, a quote is not believed, so
        # none is asked for.
        self.assertEqual(
            '--os-korora-verifier-public-key (or '
            'OS_KORORA_VERIFIER_PUBLIC_KEY) is empty: no answer of the '
            'verifier can be checked, so none would be believed',
            self.assertFails(self.openstack(
                'korora', 'policy', 'record', HOSTS[0], RECORDED,
                '--signing-key', self.operator_key, pinned=False)))
        # Pinned to a key that is not the verifier's: the genuine
        # answer is refused too.
        self.assertFails(self.openstack(
            'korora', 'policy', 'record', HOSTS[0], RECORDED,
            '--signing-key', self.operator_key,
            '--os-korora-verifier-public-key',
            self.cloud.stranger.public_path),
            'the answer is not signed by a pinned verifier key '
            '(--os-korora-verifier-public-key')
        self.assertEqual(before, self.policy_versions())

    # Forged answers on the bus: the verifier is away, an attacker's
    # server answers in its place. The CLI believes only the verifier's
    # token for its own nonce, so nothing forged is signed or imported.

    def forging_verifier(self, token_for):
        return self.useFixture(forged_answers.ForgingVerifierFixture(
            self.cloud, token_for)).forger

    def assertRecordRefused(self, *messages):
        before = self.policy_versions()
        self.assertFails(self.openstack(
            'korora', 'policy', 'record', HOSTS[0], 'forged-2026-12',
            '--signing-key', self.operator_key), *messages)
        self.assertEqual(before, self.policy_versions())

    def test_a_forged_unsigned_quote_is_refused(self):
        forger = self.forging_verifier(lambda host, nonce, values: None)
        self.assertRecordRefused(
            'the answer carries no token signed by the verifier (forged on '
            'the way, or korora-api or the verifier older than 1.2): '
            'nothing in it was believed')
        # The attacker did answer, with its nonce in the request.
        self.assertEqual([('quote_host', HOSTS[0])],
                         [ask[:2] for ask in forger.asked])
        self.assertEqual(43, len(forger.asked[0][2]))

    def test_a_quote_signed_by_the_attackers_key_is_refused(self):
        attacker = results.generate_signing_key(
            os.path.join(self.useFixture(fixtures.TempDir()).path, 'k.pem'))
        self.forging_verifier(lambda host, nonce, values: (
            operator_answers.sign_quote(
                attacker, host, values, '2026-12-04T00:00:00Z',
                results.nonce_bytes(nonce), 300)))
        self.assertRecordRefused(
            'the answer is not signed by a pinned verifier key '
            '(--os-korora-verifier-public-key')

    def test_a_quote_claiming_the_verifiers_key_id_is_refused(self):
        attacker = results.generate_signing_key(
            os.path.join(self.useFixture(fixtures.TempDir()).path, 'k.pem'))
        kid = self.cloud.verifier.signer.kid

        def token_for(host, nonce, values):
            claims = jwt.decode(operator_answers.sign_quote(
                attacker, host, values, '2026-12-04T00:00:00Z',
                results.nonce_bytes(nonce), 300),
                options={'verify_signature': False})
            return jwt.encode(claims, attacker._key, algorithm='ES256',
                              headers={'kid': kid})
        self.forging_verifier(token_for)
        self.assertRecordRefused('has a bad signature (forged or altered)')

    def test_a_replayed_genuine_quote_is_refused(self):
        # A quote the verifier really signed, for an earlier read (the
        # host's values before it was compromised, say).
        earlier = operator_answers.sign_quote(
            self.cloud.verifier.signer, HOSTS[0],
            pcr_module.to_json(self.cloud.pcr_values),
            '2026-12-01T00:00:00Z', operator_answers.new_nonce(), 300)
        self.forging_verifier(lambda host, nonce, values: earlier)
        self.assertRecordRefused('is not bound to this nonce (replayed?)')

    def test_a_forged_anchor_is_refused(self):
        before = self.run_cli('korora', 'audit', 'head', '-f', 'json')
        self.forging_verifier(lambda host, nonce, values: None)
        result = self.openstack('korora', 'audit', 'anchor', 'create',
                                HOSTS[0], '-f', 'json')
        self.assertFails(result, 'the answer carries no token signed by '
                         'the verifier')
        self.assertEqual('', result.stdout)
        self.assertEqual(before['seq'], db.audit_head().seq)

    def test_delete_and_enroll_again(self):
        host = HOSTS[1]
        self.assertEqual('', self.run_cli('korora', 'host', 'delete', host))
        table = self.run_cli('korora', 'host', 'list', '-c', 'Name',
                             '-c', 'Policy')
        self.assertEqual(
            ['+-----------+-----------------+',
             '| Name      | Policy          |',
             '+-----------+-----------------+',
             '| compute-1 | %s |' % POLICY,
             '+-----------+-----------------+'], table.splitlines())
        again = self.run_cli('korora', 'host', 'enroll', host, '--policy',
                             POLICY, '-f', 'json')
        self.assertEqual(self.enrolled[host]['ek_certificate_sha256'],
                         again['ek_certificate_sha256'])

    # Policies.

    def test_import_prints_the_signed_version(self):
        self.assertEqual((POLICY, 1, True, True, None), (
            self.imported['name'], self.imported['version'],
            self.imported['active'], self.imported['signed'],
            self.imported['signature_problem']))
        self.assertEqual(POLICY, self.imported['document']['name'])

    def test_policy_versions_activate_deactivate(self):
        path = self.policy_file(POLICY, 2)
        imported = self.run_cli('korora', 'policy', 'import', path,
                                '--signing-key', self.operator_key,
                                '--inactive', '-f', 'json')
        self.assertEqual((2, False, True), (
            imported['version'], imported['active'], imported['signed']))
        self.run_cli('korora', 'policy', 'activate', POLICY, '2')
        listed = self.run_cli('korora', 'policy', 'list', '--name', POLICY,
                              '-f', 'json')
        self.assertEqual([(POLICY, 1, True), (POLICY, 2, True)],
                         [(item['Name'], item['Version'], item['Active'])
                          for item in listed])
        self.run_cli('korora', 'policy', 'deactivate', POLICY, '2')
        newest = self.run_cli('korora', 'policy', 'show', POLICY,
                              '-f', 'yaml')
        self.assertIn('version: 2\nactive: false\nsigned: true\n', newest)
        first = self.run_cli('korora', 'policy', 'show', POLICY,
                             '--policy-version', '1', '-f', 'json')
        self.assertEqual((1, True), (first['version'], first['active']))

    # Migrations.

    def test_migration_list_filters(self):
        records = self.records
        future = (datetime.datetime.now(datetime.timezone.utc) +
                  datetime.timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')
        by_instance = self.run_cli(
            'korora', 'migration', 'list', '--instance', records['instance'],
            '-f', 'json')
        # Changed in the same second: in no particular order.
        self.assertEqual(
            {(records['committed'], 'COMMITTED'),
             (records['aborted'], 'ABORTED'), (records['back'], 'COMMITTED')},
            {(item['UUID'], item['State']) for item in by_instance})
        aborted = self.run_cli(
            'korora', 'migration', 'list', '--state', 'ABORTED', '--host',
            HOSTS[1], '-f', 'value', '-c', 'UUID', '-c', 'Reason')
        self.assertEqual('%s the destination is untrusted\n'
                         % records['aborted'], aborted)
        self.assertEqual([], self.run_cli(
            'korora', 'migration', 'list', '--changed-since', future,
            '-f', 'json'))
        self.assertEqual(2, len(self.run_cli(
            'korora', 'migration', 'list', '--changed-before', future,
            '--limit', '2', '-f', 'json')))

    def test_migration_show(self):
        shown = self.run_cli('korora', 'migration', 'show',
                             self.records['committed'], '-f', 'json')
        self.assertEqual((self.records['instance'], HOSTS[0], HOSTS[1],
                          'COMMITTED', True, None), (
            shown['instance_uuid'], shown['source_host'],
            shown['dest_host'], shown['state'], shown['final'],
            shown['recovery']))
        self.assertEqual(
            ['REQUESTED', 'PEERS_ATTESTED', 'KEY_CERTIFIED', 'TRANSFERRING',
             'MEASURED', 'VERIFIED', 'COMMITTED'],
            [entry['state'] for entry in shown['timeline']])
        self.assertEqual(7, len(shown['audit_entries']))
        self.assertTrue(all(entry['intact']
                            for entry in shown['audit_entries']))

    # The audit log.

    def test_audit_verify_intact_then_tampered(self):
        report = self.run_cli('korora', 'audit', 'verify', '-f', 'json')
        self.assertTrue(report['ok'])
        self.assertEqual([], report['problems'])
        self.assertIn('intact', report['summary'])
        with raw_sql.session() as session:
            entry = session.query(models.AuditEntry).filter_by(
                step='request').order_by(models.AuditEntry.seq).first()
            seq, details = entry.seq, entry.details
            entry.details = details.replace(HOSTS[1], 'compute-9')
        self.addCleanup(self._restore_entry, seq, details)
        result = self.openstack('korora', 'audit', 'verify', '-f', 'json')
        line = self.assertFails(result, 'audit log TAMPERED')
        self.assertIn('seq %d' % seq, line)
        report = json.loads(result.stdout)
        self.assertFalse(report['ok'])
        self.assertIn(seq, [problem['seq'] for problem in report['problems']])

    def requested_by_admin(self, after):
        """The entries after seq after whose requester is Keystone's admin
        user (by its id, as korora-api's token said)."""
        user_id = self.cloud.keystone.admin_client().users.find(
            name='admin').id
        return [entry for entry in db.audit_entries(after=after)
                if json.loads(entry.details or '{}').get(
                    'requested_by', {}).get('user_id') == user_id]

    def test_audit_head_anchor_create_and_list(self):
        before = self.run_cli('korora', 'audit', 'head', '-f', 'json')
        # An anchor is kept only when the verifier's key is pinned to
        # check it: without, nothing is asked for.
        self.assertFails(self.openstack('korora', 'audit', 'anchor',
                                        'create', HOSTS[0], pinned=False),
                         'OS_KORORA_VERIFIER_PUBLIC_KEY) is empty')
        self.assertEqual(before, self.run_cli('korora', 'audit', 'head',
                                              '-f', 'json'))
        anchor = self.run_cli('korora', 'audit', 'anchor', 'create',
                              HOSTS[0], '-f', 'json')
        self.assertEqual(HOSTS[0], anchor['host'])
        self.assertGreater(anchor['seq'], before['seq'])
        self.assertEqual('%d:%s' % (anchor['seq'], anchor['entry_hash']),
                         anchor['head'])
        # What the TPM signed is the entry naming who asked.
        (entry,) = [entry for entry in self.requested_by_admin(before['seq'])
                    if entry.seq == anchor['seq']]
        self.assertEqual(('anchor-request', anchor['entry_hash']),
                         (entry.step, entry.entry_hash))
        head = self.run_cli('korora', 'audit', 'head', '-f', 'json')
        if head['seq'] == anchor['seq']:
            self.assertTrue(head['anchored'])
        listed = self.run_cli('korora', 'audit', 'anchor', 'list',
                              '-f', 'json')
        self.assertIn({'Seq': anchor['seq'], 'Host': HOSTS[0],
                       'Created At': anchor['created_at']}, listed)
        self.assertEqual(1, len(self.run_cli(
            'korora', 'audit', 'anchor', 'list', '--limit', '1',
            '-f', 'json')))
        report = self.run_cli('korora', 'audit', 'verify', '--head',
                              anchor['head'], '-f', 'json')
        self.assertTrue(report['ok'], report['summary'])

    def test_audit_anchor_create_refusals(self):
        before = self.run_cli('korora', 'audit', 'anchor', 'list',
                              '-f', 'json')
        self.assertEqual(
            'korora-api: host compute-404 is not enrolled (HTTP 404)',
            self.assertFails(self.openstack('korora', 'audit', 'anchor',
                                            'create', 'compute-404')))
        for persona in ('system-reader', 'project-member'):
            self.assertFails(
                self.openstack('korora', 'audit', 'anchor', 'create',
                               HOSTS[0], persona=persona),
                'korora:audit:anchor', '(HTTP 403)')
        self.assertFails(self.openstack('korora', 'audit', 'head',
                                        persona='project-reader'),
                         'korora:audit:head', '(HTTP 403)')
        self.assertEqual(before, self.run_cli(
            'korora', 'audit', 'anchor', 'list', '-f', 'json'))

    @staticmethod
    def _restore_entry(seq, details):
        with raw_sql.session() as session:
            session.get(models.AuditEntry, seq).details = details

    # Personas and refusals.

    def test_system_reader_reads_but_cannot_enroll(self):
        result = self.openstack('korora', 'host', 'enroll', 'compute-3',
                                persona='system-reader')
        self.assertFails(result, 'korora-api: ', 'korora:hosts:enroll',
                         '(HTTP 403)')
        self.assertEqual(list(HOSTS), self.host_names('system-reader'))

    def test_project_reader_reads_nothing(self):
        result = self.openstack('korora', 'host', 'list',
                                persona='project-reader')
        self.assertFails(result, 'korora:hosts:list', '(HTTP 403)')

    def test_bad_input_changes_nothing(self):
        before = self.policy_versions()
        not_json = os.path.join(self.folder, 'not-json.json')
        with open(not_json, 'w') as stream:
            stream.write('{"name": "compute-2026-12", ')
        self.assertEqual(
            'korora-api: host compute-404 is not enrolled (HTTP 404)',
            self.assertFails(self.openstack('korora', 'host', 'show',
                                            'compute-404')))
        self.assertEqual(
            'korora-api: no migration not-a-uuid (HTTP 404)',
            self.assertFails(self.openstack('korora', 'migration', 'show',
                                            'not-a-uuid')))
        self.assertFails(
            self.openstack('korora', 'migration', 'list', '--instance',
                           'not-a-uuid'),
            'korora-api: query string instance_uuid', 'not-a-uuid',
            '(HTTP 400)')
        self.assertFails(
            self.openstack('korora', 'policy', 'import', not_json,
                           '--signing-key', self.operator_key),
            'policy is not valid JSON')
        self.assertFails(
            self.openstack('korora', 'policy', 'import',
                           self.policy_file(POLICY, 3),
                           '--signing-key', self.cloud.stranger.private_path),
            'korora-api: policy compute-2026-12 version 3: not signed by a '
            'trusted operator key', '(HTTP 400)')
        self.assertEqual(before, self.policy_versions())
