"""The verifier database against SQLite, PostgreSQL and MariaDB.

Every test runs three times (testscenarios): on an SQLite file, and on a
database of its own on the test process's private PostgreSQL and MariaDB
servers (tests.fixtures.databases starts them; they are not mocked and
not optional). [korora_database] connection points at that database, so
korora_nova.db.api and the alembic migrations run as in korora-verifier.
Hosts, policies and verdicts are korora's own objects: enrollment
identities with real certificate and TPM2B_PUBLIC bytes, policies from
policy.from_values, verdicts on real TPMS_ATTEST quotes.
"""

import datetime
import hashlib
import json
import os
import subprocess
import sys
import threading
from unittest import mock

from alembic import autogenerate
from alembic import migration as alembic_migration
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
import fixtures
import sqlalchemy as sa
from sqlalchemy import event
import testscenarios
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPM2_GENERATED
from tpm2_pytss.constants import TPM2_ST
from tpm2_pytss.constants import TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC
from tpm2_pytss.types import TPML_PCR_SELECTION
from tpm2_pytss.types import TPMS_ATTEST
from tpm2_pytss.types import TPMS_CLOCK_INFO
from tpm2_pytss.types import TPMT_SIGNATURE

from korora_nova.attestation import enrollment
from korora_nova.attestation import evidence
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import verdict as verdict_module
from korora_nova.db import api as db
from korora_nova.db import migration
from korora_nova.db import models
from korora_nova import exception
from korora_nova.migration import audit
from tests import base
from tests.fixtures import databases
from korora_nova.tpm import attestation_key

load_tests = testscenarios.load_tests_apply_scenarios

SCENARIOS = [(backend, {'backend': backend})
             for backend in databases.BACKENDS]
# The TCG's default EK policy (PolicySecret(TPM_RH_ENDORSEMENT)).
EK_POLICY = bytes.fromhex('837197674484b3f81a90cc8d46a5d724'
                          'fd52d76e06520b64f2a1da1b331469aa')
EK_ATTRIBUTES = (TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
                 | TPMA_OBJECT.SENSITIVEDATAORIGIN
                 | TPMA_OBJECT.ADMINWITHPOLICY | TPMA_OBJECT.RESTRICTED
                 | TPMA_OBJECT.DECRYPT)
SELECTION = [('sha256', i) for i in (0, 1, 2, 3, 7)]
# MariaDB's DATETIME keeps whole seconds (see the report on precision).
CLOCK_SLACK = datetime.timedelta(seconds=2)

_material = {}
_material_lock = threading.Lock()


def _material_once():
    """An EK CA for the process (key generation takes a quarter of a
    second)."""
    with _material_lock:
        if not _material:
            _material['ca_key'] = ec.generate_private_key(ec.SECP384R1())
        return _material


def _ek_key(host):
    """An RSA-2048 EK key per host name, made once per process: one TPM
    cannot be enrolled under two names."""
    with _material_lock:
        key = _material.get(('ek', host))
        if key is None:
            key = _material[('ek', host)] = rsa.generate_private_key(
                65537, 2048)
        return key


def make_identity(host, trust_on_first_use=False):
    """An enrollment.Identity as enrollment.finish builds it: a DER EK
    certificate issued by a CA, the EK's and an ECDSA AK's marshalled
    TPM2B_PUBLIC, the AK's PEM and name."""
    material = _material_once()
    ek_key = _ek_key(host).public_key()
    ek = TPM2B_PUBLIC.parse('rsa2048:aes128cfb',
                            objectAttributes=EK_ATTRIBUTES)
    ek.publicArea.authPolicy = EK_POLICY
    ek.publicArea.unique.rsa = ek_key.public_numbers().n.to_bytes(
        256, 'big')
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Korora Test TPMs'),
        x509.NameAttribute(NameOID.COMMON_NAME, 'Korora Test EK CA')])
    # TCG EK credential profile: an empty subject, the TPM's maker, model
    # and version in the subject alternative name.
    tpm = x509.Name([
        x509.NameAttribute(x509.ObjectIdentifier(oid), value)
        for oid, value in (('2.23.133.2.1', 'id:53574D20'),
                           ('2.23.133.2.2', 'SW   TPM'),
                           ('2.23.133.2.3', 'id:20191023'))])
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False,
        key_encipherment=True, data_encipherment=False, key_agreement=False,
        key_cert_sign=False, crl_sign=False, encipher_only=False,
        decipher_only=False)
    builder = x509.CertificateBuilder(
        issuer_name=issuer, subject_name=x509.Name([]), public_key=ek_key,
        serial_number=x509.random_serial_number(), not_valid_before=now,
        not_valid_after=now + datetime.timedelta(days=3650))
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DirectoryName(tpm)]),
        critical=True).add_extension(usage, critical=True)
    certificate = builder.sign(material['ca_key'], hashes.SHA384())
    der = certificate.public_bytes(serialization.Encoding.DER)

    ak_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    numbers = ak_key.public_numbers()
    ak = attestation_key.ak_template('ecdsa-p256-sha256')
    ak.publicArea.unique.ecc.x = numbers.x.to_bytes(32, 'big')
    ak.publicArea.unique.ecc.y = numbers.y.to_bytes(32, 'big')
    return enrollment.Identity(
        host=host, ek_type='EK-RSA2048', ek_certificate=der,
        ek_certificate_sha256=hashlib.sha256(der).hexdigest(),
        ek_public=ek.marshal(), ak_public=ak.marshal(),
        ak_public_pem=ak_key.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo),
        ak_name=bytes(ak.get_name()).hex(),
        trust_on_first_use=trust_on_first_use)


def pcr_values(seed):
    return {'sha256': {index: hashlib.sha256(b'%s:%d' % (seed, index)
                                             ).digest()
                       for _, index in SELECTION}}


def make_policy(name, version, seed=b'fleet'):
    return policy_module.from_values(name, version, pcr_values(seed))


def make_quote(nonce, values, clock=7200000, reset_count=3):
    """A QuoteEvidence with a real marshalled TPMS_ATTEST and
    TPMT_SIGNATURE (the signature is not over it: nothing here checks)."""
    attest = TPMS_ATTEST(magic=TPM2_GENERATED.VALUE,
                         type=TPM2_ST.ATTEST_QUOTE)
    attest.qualifiedSigner = b'\x00\x0b' + hashlib.sha256(nonce).digest()
    attest.extraData = nonce
    attest.clockInfo = TPMS_CLOCK_INFO(clock=clock, resetCount=reset_count,
                                       restartCount=1, safe=1)
    attest.firmwareVersion = 0x0002000100000000
    attest.attested.quote.pcrSelect = TPML_PCR_SELECTION.parse(
        'sha256:' + ','.join(str(index) for _, index in SELECTION))
    attest.attested.quote.pcrDigest = hashlib.sha256(b''.join(
        values['sha256'][index] for _, index in SELECTION)).digest()
    signature = TPMT_SIGNATURE(sigAlg=TPM2_ALG.ECDSA)
    signature.signature.ecdsa.hash = TPM2_ALG.SHA256
    signature.signature.ecdsa.signatureR = hashlib.sha256(b'r' + nonce
                                                          ).digest()
    signature.signature.ecdsa.signatureS = hashlib.sha256(b's' + nonce
                                                          ).digest()
    return evidence.QuoteEvidence(attest.marshal(), signature.marshal(),
                                  values)


def make_verdict(host, trusted, reference, values, attestation=None):
    """A Verdict as appraisal builds one: trusted ones carry the policy
    label and the quoted values, untrusted ones their reasons."""
    if trusted:
        reasons = ()
    else:
        reasons = tuple(reference.appraise(SELECTION, values)) or (
            verdict_module.Reason(verdict_module.NONCE,
                                  '%s: the quote does not carry the '
                                  'nonce sent' % host),)
    return verdict_module.Verdict(trusted, True, reasons, host,
                                  reference.label, attestation, values)


class DatabaseTestCase(base.TestCase):
    """A fresh, empty database of self.backend as [korora_database]
    connection."""

    scenarios = SCENARIOS
    sync = True

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(
            databases.DatabaseFixture(self.backend))
        self.url = self.database.url
        self.config.config(group='korora_database', connection=self.url)
        # Engines let go of the database before the fixture drops it.
        self.addCleanup(db.dispose)
        if self.sync:
            migration.db_sync()

    def inspector(self):
        return sa.inspect(db.get_engine())

    def schema(self):
        """What the database says of its tables, comparable."""
        inspector = self.inspector()
        tables = {}
        for table in sorted(inspector.get_table_names()):
            tables[table] = (
                [(c['name'], str(c['type']), c['nullable'])
                 for c in inspector.get_columns(table)],
                sorted((i['name'], tuple(i['column_names']), i['unique'])
                       for i in inspector.get_indexes(table)),
                sorted((u['name'], tuple(u['column_names']))
                       for u in inspector.get_unique_constraints(table)),
                inspector.get_pk_constraint(table)['constrained_columns'])
        return tables


class TestMigrations(DatabaseTestCase):

    sync = False

    def test_db_sync_from_an_empty_database(self):
        self.assertEqual([], self.inspector().get_table_names())
        self.assertIsNone(migration.db_version())
        migration.db_sync()
        self.assertEqual(migration.head_version(), migration.db_version())
        self.assertEqual(set(models.BASE.metadata.tables) | {
            'alembic_version'}, set(self.inspector().get_table_names()))
        self.assertTrue({'hosts', 'policies', 'verdicts', 'host_trust'}
                        <= set(models.BASE.metadata.tables))

    def test_db_sync_twice_is_a_no_op(self):
        migration.db_sync()
        db.host_create(make_identity('compute-1'))
        schema = self.schema()
        migration.db_sync()
        self.assertEqual(migration.head_version(), migration.db_version())
        self.assertEqual(schema, self.schema())
        self.assertEqual(['compute-1'], [h.name for h in db.host_list()])

    def test_models_match_migrations(self):
        migration.db_sync()
        with db.get_engine().connect() as connection:
            context = alembic_migration.MigrationContext.configure(
                connection, opts={'compare_type': True,
                                  'compare_server_default': True})
            diff = autogenerate.compare_metadata(context,
                                                 models.BASE.metadata)
        self.assertEqual([], diff)

    def test_korora_manage_db_sync(self):
        folder = self.useFixture(fixtures.TempDir()).path
        config = os.path.join(folder, 'korora.conf')
        with open(config, 'w') as stream:
            stream.write('[korora_database]\nconnection = %s\n' % self.url)
        command = [sys.executable, '-m', 'korora_nova.cmd.manage',
                   '--config-file', config, 'db']
        head = migration.head_version()
        for action, expected in (('version', 'empty'),
                                 ('sync', 'database at revision ' + head),
                                 ('version', head)):
            result = subprocess.run(command + [action],
                                    capture_output=True, text=True,
                                    timeout=120)
            self.assertEqual(0, result.returncode, result.stderr)
            self.assertEqual(expected, result.stdout.strip())
        self.assertEqual(head, migration.db_version())


class TestHosts(DatabaseTestCase):

    def test_create_and_get_keeps_every_field(self):
        identity = make_identity('compute-1')
        before = db.utcnow().replace(microsecond=0)
        db.host_create(identity, policy_name='fleet')
        host = db.host_get('compute-1')
        for field in ('ek_certificate', 'ek_public', 'ak_public'):
            value = getattr(host, field)
            self.assertIsInstance(value, bytes, field)
            self.assertEqual(getattr(identity, field), value, field)
        self.assertIn(b'\x00', host.ek_public)
        self.assertEqual(
            identity.ek_certificate,
            x509.load_der_x509_certificate(host.ek_certificate).public_bytes(
                serialization.Encoding.DER))
        self.assertEqual(identity.ek_certificate_sha256,
                         host.ek_certificate_sha256)
        self.assertEqual(identity.ak_name, host.ak_name)
        self.assertEqual('EK-RSA2048', host.ek_type)
        self.assertIs(False, host.trust_on_first_use)
        self.assertEqual('fleet', host.policy_name)
        self.assertIsNone(host.last_reset_count)
        self.assertIsNone(host.last_clock)
        for field in ('enrolled_at', 'next_attestation_at'):
            value = getattr(host, field)
            self.assertIsNone(value.tzinfo, field)
            self.assertLessEqual(before, value, field)
            self.assertLessEqual(value, db.utcnow(), field)
        self.assertEqual(host.enrolled_at, host.next_attestation_at)

    def test_trust_on_first_use_is_a_boolean(self):
        db.host_create(make_identity('compute-1', trust_on_first_use=True))
        self.assertIs(True, db.host_get('compute-1').trust_on_first_use)

    def test_longest_names(self):
        name = 'c' * 63 + ('.' + 'd' * 63) * 3          # 255 characters
        db.host_create(make_identity(name), policy_name='p' * 255)
        host = db.host_get(name)
        self.assertEqual(name, host.name)
        self.assertEqual('p' * 255, host.policy_name)

    def test_enrolling_a_name_twice(self):
        db.host_create(make_identity('compute-1'))
        error = self.assertRaises(exception.HostExists, db.host_create,
                                  make_identity('compute-1'))
        self.assertIn('compute-1 is already enrolled', str(error))
        # The failed transaction left nothing behind, and the database
        # is still usable.
        db.host_create(make_identity('compute-2'))
        self.assertEqual(['compute-1', 'compute-2'],
                         [h.name for h in db.host_list()])

    def test_names_differing_in_case_are_other_hosts(self):
        # (Surrounding spaces are refused at enrollment: MySQL/MariaDB
        # compare names with trailing spaces as equal.)
        for name in ('compute-1', 'COMPUTE-1'):
            db.host_create(make_identity(name))
        self.assertEqual('COMPUTE-1', db.host_get('COMPUTE-1').name)
        self.assertEqual('compute-1', db.host_get('compute-1').name)
        self.assertEqual(['COMPUTE-1', 'compute-1'],
                         sorted(h.name for h in db.host_list()))

    def test_unknown_host(self):
        error = self.assertRaises(
            exception.HostNotFound, db.host_get, 'compute-9')
        self.assertIn('compute-9 is not enrolled', str(error))
        self.assertRaises(exception.HostNotFound, db.host_delete, 'compute-9')
        self.assertRaises(
            exception.HostNotFound, db.host_set_policy, 'compute-9',
            'fleet')

    def test_list_is_sorted_by_name(self):
        self.assertEqual([], db.host_list())
        for name in ('compute-3', 'compute-10', 'compute-1', 'compute-2'):
            db.host_create(make_identity(name))
        self.assertEqual(['compute-1', 'compute-10', 'compute-2',
                          'compute-3'], [h.name for h in db.host_list()])

    def test_delete_removes_the_host_and_its_trust_not_the_audit(self):
        reference = make_policy('fleet', 1)
        values = pcr_values(b'fleet')
        for name in ('compute-1', 'compute-2'):
            db.host_create(make_identity(name))
            db.record_verdict(name, make_verdict(name, True, reference,
                                                 values))
        db.host_delete('compute-1')
        self.assertRaises(exception.HostNotFound, db.host_get, 'compute-1')
        self.assertEqual(['compute-2'], [h.name for h in db.host_list()])
        self.assertEqual({'compute-2'}, set(db.host_trust_all()))
        self.assertEqual(1, len(db.verdicts_for_host('compute-1')))
        self.assertRaises(exception.HostNotFound, db.host_delete, 'compute-1')
        # Enrolled again, it starts without a verdict.
        db.host_create(make_identity('compute-1'))
        self.assertNotIn('compute-1', db.host_trust_all())

    def test_set_policy(self):
        db.host_create(make_identity('compute-1'))
        db.host_set_policy('compute-1', 'fleet')
        self.assertEqual('fleet', db.host_get('compute-1').policy_name)
        db.host_set_policy('compute-1', None)
        self.assertIsNone(db.host_get('compute-1').policy_name)


class TestPolicies(DatabaseTestCase):

    def test_create_and_get(self):
        reference = make_policy('fleet', 1)
        row = db.policy_create(reference)
        self.assertEqual(('fleet', 1, True), (row.name, row.version,
                                              row.active))
        stored = db.policy_get('fleet')
        self.assertEqual(('fleet', 1), (stored.name, stored.version))
        self.assertIs(True, stored.active)
        self.assertIsNone(stored.created_at.tzinfo)
        self.assertEqual(reference, policy_module.from_json(
            json.loads(stored.document)))

    def test_the_largest_policy_a_file_may_hold(self):
        # 24 PCRs with 600 allowed values each: about 1 MiB of JSON, the
        # most policy.loads accepts.
        reference = policy_module.ReferencePolicy('fleet', 1, {
            ('sha256', index): frozenset(
                hashlib.sha256(b'%d-%d' % (index, n)).digest()
                for n in range(600))
            for index in range(24)})
        db.policy_create(reference)
        stored = db.policy_get('fleet')
        self.assertGreater(len(stored.document), 64 * 1024)
        self.assertEqual(reference, policy_module.from_json(
            json.loads(stored.document)))

    def test_a_version_twice(self):
        db.policy_create(make_policy('fleet', 1))
        error = self.assertRaises(exception.PolicyExists, db.policy_create,
                                  make_policy('fleet', 1, b'other'))
        self.assertIn('fleet v1 already exists', str(error))
        self.assertEqual(make_policy('fleet', 1), policy_module.from_json(
            json.loads(db.policy_get('fleet', 1).document)))
        db.policy_create(make_policy('fleet', 2))

    def test_versions(self):
        for version in (1, 3, 2):
            db.policy_create(make_policy('fleet', version,
                                         b'%d' % version))
        db.policy_create(make_policy('edge', 1))
        self.assertEqual(3, db.policy_get('fleet').version)
        self.assertEqual(2, db.policy_get('fleet', 2).version)
        self.assertEqual(make_policy('fleet', 2, b'2'),
                         policy_module.from_json(json.loads(
                             db.policy_get('fleet', 2).document)))
        self.assertEqual(
            [('edge', 1), ('fleet', 1), ('fleet', 2), ('fleet', 3)],
            [(p.name, p.version) for p in db.policy_list()])

    def test_unknown_policy(self):
        error = self.assertRaises(
            exception.PolicyNotFound, db.policy_get, 'fleet')
        self.assertEqual('no policy fleet', str(error))
        db.policy_create(make_policy('fleet', 1))
        error = self.assertRaises(
            exception.PolicyNotFound, db.policy_get, 'fleet',
            2)
        self.assertEqual('no policy fleet v2', str(error))
        self.assertRaises(
            exception.PolicyNotFound, db.policy_set_active, 'fleet',
            2, False)

    def test_active_versions_newest_first(self):
        for version in (1, 2, 3, 4):
            db.policy_create(make_policy('fleet', version),
                             active=version != 3)
        db.policy_create(make_policy('edge', 7))
        self.assertEqual([4, 2, 1],
                         [p.version for p in db.policies_active('fleet')])
        self.assertTrue(all(p.active is True
                            for p in db.policies_active('fleet')))
        db.policy_set_active('fleet', 4, False)
        db.policy_set_active('fleet', 3, True)
        self.assertEqual([3, 2, 1],
                         [p.version for p in db.policies_active('fleet')])
        self.assertIs(False, db.policy_get('fleet', 4).active)
        self.assertEqual([], db.policies_active('nothing'))

    def test_longest_name_and_its_label(self):
        name = 'politique-été-' + 'x' * 241             # 255 characters
        reference = make_policy(name, 2147483647)
        db.policy_create(reference)
        self.assertEqual(name, db.policy_get(name).name)
        db.host_create(make_identity('compute-1'), policy_name=name)
        row, _ = db.record_verdict('compute-1', make_verdict(
            'compute-1', True, reference, pcr_values(b'fleet')))
        self.assertEqual(reference.label,
                         db.verdicts_for_host('compute-1')[0].policy)


class TestVerdicts(DatabaseTestCase):

    def setUp(self):
        super().setUp()
        self.reference = make_policy('fleet', 3)
        db.policy_create(self.reference)
        for name in ('compute-1', 'compute-2'):
            db.host_create(make_identity(name), policy_name='fleet')

    def record(self, host, trusted, seed=b'fleet', clock=7200000,
               reset_count=3):
        nonce = os.urandom(32)
        values = pcr_values(seed if trusted else b'tampered')
        quote = make_quote(nonce, values, clock, reset_count)
        attestation = evidence.parse_attestation(quote.message)
        verdict = make_verdict(host, trusted, self.reference, values,
                               attestation)
        row, previous = db.record_verdict(host, verdict, nonce, quote,
                                          attestation.clock_info)
        return verdict, quote, nonce, row, previous

    def test_record_returns_the_previous_trust(self):
        self.assertIsNone(self.record('compute-1', True)[-1])
        self.assertIs(True, self.record('compute-1', False)[-1])
        self.assertIs(False, self.record('compute-1', False)[-1])
        self.assertIs(False, self.record('compute-1', True)[-1])
        self.assertIsNone(self.record('compute-2', False)[-1])

    def test_host_trust_all(self):
        self.assertEqual({}, db.host_trust_all())
        before = db.utcnow().replace(microsecond=0)
        trusted = self.record('compute-1', True)[0]
        untrusted = self.record('compute-2', False)[0]
        trust = db.host_trust_all()
        self.assertEqual({'compute-1', 'compute-2'}, set(trust))
        self.assertEqual((True, trusted.summary()), trust['compute-1'][:2])
        self.assertEqual((False, untrusted.summary()),
                         trust['compute-2'][:2])
        self.assertIs(True, trust['compute-1'][0])
        self.assertIs(False, trust['compute-2'][0])
        for _, _, verified_at in trust.values():
            self.assertIsNone(verified_at.tzinfo)
            self.assertLessEqual(before, verified_at)
            self.assertLessEqual(verified_at, db.utcnow())
        self.record('compute-2', True)
        self.assertIs(True, db.host_trust_all()['compute-2'][0])

    def test_verdicts_for_host_newest_first(self):
        recorded = [self.record('compute-1', trusted)
                    for trusted in (True, False, True, False, False)]
        self.record('compute-2', True)
        rows = db.verdicts_for_host('compute-1')
        self.assertEqual([r[3].id for r in reversed(recorded)],
                         [row.id for row in rows])
        self.assertEqual([False, False, True, False, True],
                         [row.trusted for row in rows])
        self.assertEqual([r[3].id for r in reversed(recorded)][:2],
                         [row.id for row in db.verdicts_for_host(
                             'compute-1', limit=2)])
        self.assertEqual([], db.verdicts_for_host('compute-9'))

    def test_a_verdict_keeps_its_evidence(self):
        verdict, quote, nonce, row, _ = self.record('compute-1', False)
        stored = db.verdicts_for_host('compute-1')[0]
        self.assertEqual(row.id, stored.id)
        self.assertEqual('compute-1', stored.host_name)
        self.assertIs(False, stored.trusted)
        self.assertEqual(verdict.summary(), stored.summary)
        self.assertEqual([{'code': r.code, 'message': r.message}
                          for r in verdict.reasons],
                         json.loads(stored.reasons))
        self.assertEqual(5, len(json.loads(stored.reasons)))
        self.assertEqual('fleet v3', stored.policy)
        self.assertEqual(nonce.hex(), stored.nonce)
        self.assertEqual(verdict.to_json()['pcr_values'],
                         json.loads(stored.pcr_values))
        self.assertIsInstance(stored.quote_message, bytes)
        self.assertEqual(quote.message, stored.quote_message)
        self.assertEqual(quote.signature, stored.quote_signature)
        self.assertEqual(nonce, evidence.parse_attestation(
            stored.quote_message).extra_data)
        self.assertIsNone(stored.created_at.tzinfo)

    def test_a_verdict_without_evidence(self):
        verdict = verdict_module.Verdict(
            False, False, (verdict_module.Reason(
                verdict_module.MALFORMED,
                'compute-1: the quote is not a TPMS_ATTEST'),),
            'compute-1')
        row, previous = db.record_verdict('compute-1', verdict)
        self.assertIsNone(previous)
        stored = db.verdicts_for_host('compute-1')[0]
        self.assertEqual((None, None, None, None, 'null'),
                         (stored.policy, stored.nonce, stored.quote_message,
                          stored.quote_signature, stored.pcr_values))

    def test_a_trusted_quote_moves_the_clock_floor(self):
        # resetCount is a 32-bit counter and clock a 64-bit one: beyond
        # what a 32-bit signed column holds.
        self.record('compute-1', True, clock=2 ** 40, reset_count=2 ** 32 - 2)
        host = db.host_get('compute-1')
        self.assertEqual((2 ** 32 - 2, 2 ** 40),
                         (host.last_reset_count, host.last_clock))
        # An untrusted quote does not.
        self.record('compute-1', False, clock=2 ** 41, reset_count=7)
        host = db.host_get('compute-1')
        self.assertEqual((2 ** 32 - 2, 2 ** 40),
                         (host.last_reset_count, host.last_clock))
        self.assertEqual((None, None),
                         (db.host_get('compute-2').last_reset_count,
                          db.host_get('compute-2').last_clock))


class TestVerdictBatches(TestVerdicts):
    """The verifier's rounds write their verdicts in batches."""

    def chain_problems(self):
        """What audit verify finds wrong with the chain and its rows (this
        test's policy is unsigned on purpose)."""
        return [problem for problem in audit.verify().problems
                if problem.code != 'unsigned-policy']

    def made(self, host, trusted, clock=7200000):
        nonce = os.urandom(32)
        values = pcr_values(b'fleet' if trusted else b'tampered')
        quote = make_quote(nonce, values, clock, 3)
        attestation = evidence.parse_attestation(quote.message)
        return db.VerdictRecord(
            host, make_verdict(host, trusted, self.reference, values,
                               attestation),
            nonce, quote, attestation.clock_info if trusted else None)

    def test_a_batch_is_stored_in_order_with_its_audit_entries(self):
        db.host_create(make_identity('compute-3'), policy_name='fleet')
        head = db.audit_head()
        batch = [self.made('compute-1', True, clock=8000000),
                 self.made('compute-2', False),
                 self.made('compute-3', True, clock=9000000)]
        written = db.record_verdicts(batch)
        self.assertEqual([None, None, None],
                         [previous for _, previous in written])
        trust = db.host_trust_all()
        self.assertEqual({'compute-1': True, 'compute-2': False,
                          'compute-3': True},
                         {name: trust[name][0] for name in trust})
        for record, (row, _) in zip(batch, written):
            stored = db.verdicts_for_host(record.host_name)[0]
            self.assertEqual((row.id, record.nonce.hex()),
                             (stored.id, stored.nonce))
        first = db.host_get('compute-1')
        self.assertEqual((3, 8000000),
                         (first.last_reset_count, first.last_clock))
        self.assertEqual(9000000, db.host_get('compute-3').last_clock)
        self.assertIsNone(db.host_get('compute-2').last_clock)
        entries = db.audit_entries(after=head.seq)
        self.assertEqual(['compute-1', 'compute-2', 'compute-3'],
                         [entry.host for entry in entries])
        self.assertEqual({'verdict'}, {entry.step for entry in entries})
        self.assertEqual([], self.chain_problems())

    def test_the_next_batch_sees_the_previous_trust(self):
        db.record_verdicts([self.made('compute-1', True),
                            self.made('compute-2', True)])
        written = db.record_verdicts([self.made('compute-2', False),
                                      self.made('compute-1', True)])
        self.assertEqual([True, True],
                         [previous for _, previous in written])
        self.assertIs(False, db.host_trust_all()['compute-2'][0])

    def test_a_host_removed_meanwhile_loses_its_verdict_not_the_others(self):
        """Removed between its claim and the batch's write: its verdict
        must not give a removed host a trusted row again."""
        db.host_delete('compute-2')
        written = db.record_verdicts([self.made('compute-1', True),
                                      self.made('compute-2', True)])
        self.assertIsNone(written[1])
        self.assertIsNotNone(written[0])
        self.assertEqual({'compute-1'}, set(db.host_trust_all()))
        self.assertEqual([], db.verdicts_for_host('compute-2'))
        self.assertEqual([], self.chain_problems())
        error = self.assertRaises(
            exception.HostNotFound, db.record_verdict, 'compute-2',
            self.made('compute-2', True).verdict)
        self.assertEqual('host compute-2 is not enrolled', str(error))

    def test_an_empty_batch(self):
        head = db.audit_head()
        self.assertEqual([], db.record_verdicts([]))
        self.assertEqual(head.seq, db.audit_head().seq)


class DueHostsTestCase(DatabaseTestCase):
    """Six enrolled hosts, all due. Verifier workers share the database:
    each due host is to be attested by exactly one of them per round."""

    INTERVAL = 300

    def setUp(self):
        super().setUp()
        self.names = ['compute-%d' % i for i in range(1, 7)]
        for name in self.names:
            db.host_create(make_identity(name))

    def scheduled(self):
        return {host.name: host.next_attestation_at
                for host in db.host_list()}

    def claim(self, limit=100):
        """The names of the hosts one worker claims."""
        return [host.name for host in db.hosts_claim_due(self.INTERVAL,
                                                         limit=limit)]


class TestClaimDue(DueHostsTestCase):

    def test_two_workers_in_a_row(self):
        before = self.scheduled()
        started = db.utcnow()
        first = self.claim()
        second = self.claim()
        self.assertEqual(sorted(self.names), sorted(first))
        self.assertEqual([], second)
        after = self.scheduled()
        due = started + datetime.timedelta(seconds=self.INTERVAL)
        for name in self.names:
            self.assertGreater(after[name], before[name])
            self.assertLessEqual(due - CLOCK_SLACK, after[name])
            self.assertLessEqual(after[name], db.utcnow() + datetime.timedelta(
                seconds=self.INTERVAL))

    def test_two_workers_with_a_limit(self):
        first = self.claim(limit=4)
        second = self.claim(limit=4)
        third = self.claim(limit=4)
        self.assertEqual(4, len(first))
        self.assertEqual(2, len(second))
        self.assertEqual([], third)
        self.assertEqual(sorted(self.names), sorted(first + second))

    def test_next_round(self):
        self.assertEqual(6, len(self.claim()))
        later = db.utcnow() + datetime.timedelta(seconds=self.INTERVAL + 5)
        with mock.patch.object(db, 'utcnow', return_value=later):
            first = self.claim()
            second = self.claim()
        self.assertEqual(sorted(self.names), sorted(first))
        self.assertEqual([], second)
        moved = later + datetime.timedelta(seconds=self.INTERVAL)
        for name, scheduled in self.scheduled().items():
            self.assertLessEqual(moved - CLOCK_SLACK, scheduled)
            self.assertLessEqual(scheduled, moved)

    def test_oldest_due_first(self):
        self.claim()
        now = db.utcnow()
        # Spread the schedule: compute-6 is the most overdue.
        engine = db.get_engine()
        with engine.begin() as connection:
            for offset, name in enumerate(reversed(self.names)):
                connection.execute(
                    sa.update(models.Host).where(
                        models.Host.name == name).values(
                        next_attestation_at=now - datetime.timedelta(
                            minutes=10 - offset)))
        self.assertEqual(['compute-5', 'compute-6'],
                         sorted(self.claim(limit=2)))


class TestClaimDueRace(DueHostsTestCase):
    """Worker B claims while worker A's claim holds its hosts, before A
    commits: B must get the other hosts at once, never one of A's, and
    not wait for A (FOR UPDATE SKIP LOCKED).

    PostgreSQL and MariaDB only: SQLite locks the whole database for a
    writer, so B cannot claim while A's transaction is open there (B's
    claim waits for A instead).
    """

    scenarios = [(backend, {'backend': backend})
                 for backend in (databases.POSTGRESQL, databases.MYSQL)]

    def test_two_workers_racing(self):
        claims = {}
        engine = db.get_engine()
        racer = threading.current_thread()
        raced = []

        def worker_b():
            claims['b'] = self.claim()

        def after_cursor_execute(conn, cursor, statement, *args):
            # A's hosts are locked once its claim read them (MariaDB's
            # SELECT) or moved them (PostgreSQL's UPDATE ... RETURNING).
            if (threading.current_thread() is racer and not raced
                    and 'FOR UPDATE' in statement.upper()):
                raced.append(statement)
                thread = threading.Thread(target=worker_b)
                thread.start()
                thread.join(30)
                if thread.is_alive():
                    raise AssertionError('worker B waited for worker A')

        event.listen(engine, 'after_cursor_execute', after_cursor_execute)
        self.addCleanup(event.remove, engine, 'after_cursor_execute',
                        after_cursor_execute)
        claims['a'] = self.claim(limit=4)
        self.assertEqual(1, len(raced))
        self.assertEqual(4, len(claims['a']))
        self.assertEqual(2, len(claims['b']))
        self.assertEqual(set(), set(claims['a']) & set(claims['b']))
        self.assertEqual(sorted(self.names),
                         sorted(claims['a'] + claims['b']))
        self.assertEqual([], self.claim())


class TestConnectionSwitch(DatabaseTestCase):

    def test_factories_are_cached_per_url(self):
        db.host_create(make_identity('compute-1'))
        factory = db.context_manager()
        self.assertIs(factory, db.context_manager())

        other = self.useFixture(databases.DatabaseFixture(self.backend))
        self.addCleanup(db.dispose)
        self.config.config(group='korora_database', connection=other.url)
        self.assertIsNot(factory, db.context_manager())
        self.assertIsNone(migration.db_version())
        migration.db_sync()
        self.assertEqual([], db.host_list())
        db.host_create(make_identity('compute-2'))
        self.assertEqual(['compute-2'], [h.name for h in db.host_list()])

        self.config.config(group='korora_database', connection=self.url)
        self.assertIs(factory, db.context_manager())
        self.assertEqual(['compute-1'], [h.name for h in db.host_list()])

        db.dispose()
        self.assertIsNot(factory, db.context_manager())
        self.assertEqual(['compute-1'], [h.name for h in db.host_list()])
        self.config.config(group='korora_database', connection=other.url)
        self.assertEqual(['compute-2'], [h.name for h in db.host_list()])

    def test_switch_to_sqlite_and_back(self):
        db.host_create(make_identity('compute-1'))
        sqlite = self.useFixture(databases.DatabaseFixture(
            databases.SQLITE))
        self.config.config(group='korora_database', connection=sqlite.url)
        migration.db_sync()
        self.assertEqual([], db.host_list())
        self.assertEqual('sqlite', db.get_engine().dialect.name)
        self.config.config(group='korora_database', connection=self.url)
        self.assertEqual({databases.SQLITE: 'sqlite',
                          databases.POSTGRESQL: 'postgresql',
                          databases.MYSQL: 'mysql'}[self.backend],
                         db.get_engine().dialect.name)
        self.assertEqual(['compute-1'], [h.name for h in db.host_list()])
