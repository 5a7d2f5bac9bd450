"""Attacks on Kororā's trust boundaries, through the real services.

Whatever crosses the message bus can be sent, forged or replayed by any
of its clients. These tests are such clients:

- a plain oslo.messaging client on the vTPM manager's topic, on a real
  RabbitMQ broker, against a real vTPM manager on its own swtpm: only
  verifier-signed challenges and authorizations are honoured, each
  authorization once, for its host; forgeries cannot fill the manager's
  pool of per-migration keys;
- a quote the verifier asked for over the bus (attest purpose), over a
  manifest's digest, is no manifest signature: neither the manifest
  check nor the verifier accepts it, and in Nova a source that hands
  one over for tampered state gets its instance quarantined;
- a forged or replayed verifier answer put on the bus in the verifier's
  place is refused by the live-migration hooks in Nova, and the server
  stays on its source;
- a quote over a rewritten audit log's head, asked for over the bus, is
  no TPM anchor of that log.

Nothing of tpm2-pytss, cryptography, libvirt or the evidence is mocked.
"""

import argparse
import base64
import os
import time
import uuid

from cryptography.hazmat.primitives.asymmetric import ec
import fixtures
import jwt
from novaclient import exceptions as nova_exceptions
import oslo_messaging as messaging
from testtools import content

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova.cmd import manage
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova.db import models
from korora_nova import exception
from korora_nova.hooks import protocol
from korora_nova.hypervisors import file_backend
from korora_nova.db import audit_log
from korora_nova.migration import audit
from korora_nova.attestation.canonical import canonical
from korora_nova.migration import manifest as manifest_module
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova import rpc
from tests import base
from korora_nova.demo import nova_cloud
from tests.functional import test_live_migration_hooks_in_nova
from korora_nova.demo import services
from korora_nova.tpm import certify
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.verifier import migrations
from korora_nova.rpcapi import verifier as verifier_rpcapi
from korora_nova.vtpm_manager import local_client
from korora_nova.rpcapi import vtpm_manager as rpcapi
from tests.fixtures import rabbitmq
from tests.fixtures import raw_sql

CONF = conf.CONF
HOST = 'compute-1'
OTHER = 'compute-2'
SOURCE = test_live_migration_hooks_in_nova.SOURCE
DEST = test_live_migration_hooks_in_nova.DEST
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
# Forged authorizations sent in one test: more than the manager's pool
# of waiting migration keys (manager.MAX_MIGRATION_KEYS, 256).
FLOOD = 300
CALL_TIMEOUT = 10
GATE_LOG = 'korora_nova.vtpm_manager.authorization'
NOT_PINNED = ('the answer is not signed by a pinned verifier key ([korora] '
              'verifier_public_keys)')
BAD_SIGNATURE = ('the verifier\'s answer has a bad signature (forged or '
                 'altered)')


def attacker_key():
    """An EC P-256 key of the attacker's own: a SigningKey never pinned."""
    return results.SigningKey(ec.generate_private_key(ec.SECP256R1()))


def spoofed(signing_key, kind, subject, claims, kid):
    """A token signed by signing_key, its header naming key id kid (a
    pinned key's, say)."""
    now = int(time.time())
    body = {'eat_profile': results.EAR_PROFILE, 'iss': results.ISSUER,
            'iat': now, 'exp': now + 60, 'sub': subject,
            'jti': str(uuid.uuid4()), 'korora.kind': kind}
    body.update(claims)
    return jwt.encode(body, signing_key._key, algorithm=results.ALGORITHM,
                      headers={'kid': kid})


def unsigned(kind, subject, claims):
    """A token with no signature at all (JWS alg "none")."""
    now = int(time.time())
    body = {'iss': results.ISSUER, 'iat': now, 'exp': now + 60,
            'sub': subject, 'jti': str(uuid.uuid4()), 'korora.kind': kind}
    body.update(claims)
    return jwt.encode(body, None, algorithm='none')


def expired(signing_key, kind, subject, claims):
    """A genuine token whose lifetime ended a minute ago (one captured
    from an earlier migration)."""
    now = int(time.time())
    body = {'eat_profile': results.EAR_PROFILE, 'iss': results.ISSUER,
            'iat': now - 120, 'exp': now - 60, 'sub': subject,
            'jti': str(uuid.uuid4()), 'korora.kind': kind}
    body.update(claims)
    return jwt.encode(body, signing_key._key, algorithm=results.ALGORITHM,
                      headers={'kid': signing_key.kid})


def certify_claims(host=HOST, migration_uuid=None, nonce=None,
                   action=results.CERTIFY_KEY, role='destination'):
    """What the verifier's authorization of certify_migration_key says."""
    return {'korora.action': action, 'korora.role': role,
            'korora.migration': {
                'uuid': migration_uuid or str(uuid.uuid4()),
                'instance_uuid': INSTANCE, 'source_host': OTHER,
                'dest_host': host, 'state': states.PEERS_ATTESTED,
                'source_nonce': None, 'dest_nonce': '11' * 32},
            'eat_nonce': results.nonce_claim(nonce or os.urandom(32))}


def challenge_claims(nonce, name='attest'):
    return {'eat_nonce': results.nonce_claim(nonce), 'korora.purpose': name}


class BusAttackTestCase(base.TestCase):
    """A real vTPM manager for HOST on a real RabbitMQ broker, and an
    anonymous client on its topic (self.call)."""

    def setUp(self):
        super().setUp()
        self.useFixture(rabbitmq.RabbitMQBusFixture(CONF))
        self.keys = services.verifier_keys(self)
        self.signer = self.keys.signer
        self.gate_log = self.useFixture(fixtures.FakeLogger(
            name=GATE_LOG, format='%(message)s'))
        self.tpm = self.useFixture(services.SoftwareTPMFixture())
        self.host = self.useFixture(services.VTPMManagerFixture(
            HOST, self.tpm))
        self.manager = self.host.manager
        self.ak_key = appraisal.load_public_key(self.manager.ak.public)
        # Anyone on the bus: no signing key, no korora client code.
        self.client = messaging.get_rpc_client(
            rpc.get_transport(), messaging.Target(
                topic=CONF.korora.manager_topic, server=HOST,
                version='2.0'))

    def call(self, method, **arguments):
        return self.client.prepare(timeout=CALL_TIMEOUT).call(
            {}, method, **arguments)

    def refused(self, method, reason, **arguments):
        """The manager's refusal of method (a RemoteError), naming
        reason."""
        error = self.assertRaises(messaging.RemoteError, self.call, method,
                                  **arguments)
        self.assertEqual('NotAuthorized', error.exc_type, error.value)
        self.assertIn('%s: ' % HOST, error.value)
        self.assertIn(reason, error.value)
        return error

    def refusals_logged(self, what):
        return [line for line in self.gate_log.output.splitlines()
                if line.startswith('%s: %s refused: ' % (HOST, what))]

    def genuine_certify(self, claims):
        """certify_migration_key with the verifier's authorization; the
        key, checked against the manager's AK for the certify purpose."""
        token = self.signer.sign(results.AUTHORIZATION, HOST, 60, claims)
        reply = self.call('certify_migration_key',
                          authorization_token=token)
        nonce = results.nonce_bytes(claims['eat_nonce'])
        found = appraisal.appraise_certification(
            base64.b64decode(reply['attestation']),
            base64.b64decode(reply['signature']), self.ak_key,
            purpose.qualifying_data(purpose.CERTIFY, nonce),
            base64.b64decode(reply['public']), host=HOST)
        self.assertTrue(found.evidence_valid, found.summary())
        return token, reply


class TestAnonymousManagerCalls(BusAttackTestCase):

    def test_attest_answers_only_a_verifier_challenge_for_this_host(self):
        nonce = os.urandom(32)
        attacker = attacker_key()
        attempts = [
            # The 1.x API: a raw nonce, quoted as it was.
            (base64.b64encode(nonce).decode('ascii'),
             'not a signed token'),
            (unsigned(results.CHALLENGE, HOST, challenge_claims(nonce)),
             NOT_PINNED),
            (attacker.sign(results.CHALLENGE, HOST, 60,
                           challenge_claims(nonce)), NOT_PINNED),
            (spoofed(attacker, results.CHALLENGE, HOST,
                     challenge_claims(nonce), self.signer.kid),
             BAD_SIGNATURE),
            (expired(self.signer, results.CHALLENGE, HOST,
                     challenge_claims(nonce)), 'has expired'),
            # Genuine, but for another host, or not a challenge.
            (self.signer.sign(results.CHALLENGE, OTHER, 60,
                              challenge_claims(nonce)),
             'is about compute-2, not compute-1'),
            (self.signer.sign(results.AUTHORIZATION, HOST, 60,
                              certify_claims()),
             'a authorization was sent where a challenge was expected'),
            # Genuine, for a purpose no bus caller may have quoted.
            (self.signer.sign(results.CHALLENGE, HOST, 60,
                              challenge_claims(nonce, 'manifest')),
             'the challenge names no purpose this manager quotes for'),
            (self.signer.sign(results.CHALLENGE, HOST, 60,
                              challenge_claims(nonce, 'arrival')),
             'the challenge names no purpose this manager quotes for'),
        ]
        for challenge, reason in attempts:
            self.refused('attest', reason, challenge=challenge)
        self.assertEqual(len(attempts), len(self.refusals_logged('attest')),
                         self.gate_log.output)
        # The verifier's own challenge is answered, for its purpose.
        reply = self.call('attest', challenge=self.signer.sign(
            results.CHALLENGE, HOST, 60, challenge_claims(nonce)))
        made = evidence.QuoteEvidence(
            base64.b64decode(reply['message']),
            base64.b64decode(reply['signature']),
            pcr_values.from_json(reply['pcr_values']))
        found = appraisal.appraise_quote(
            made, self.ak_key, purpose.qualifying_data(purpose.ATTEST, nonce),
            None, host=HOST)
        self.assertTrue(found.evidence_valid, found.summary())

    def test_forged_authorizations_never_fill_the_key_pool(self):
        attacker = attacker_key()
        forgeries = [
            lambda: base64.b64encode(os.urandom(32)).decode('ascii'),
            lambda: unsigned(results.AUTHORIZATION, HOST, certify_claims()),
            lambda: attacker.sign(results.AUTHORIZATION, HOST, 60,
                                  certify_claims()),
            lambda: spoofed(attacker, results.AUTHORIZATION, HOST,
                            certify_claims(), self.signer.kid),
            lambda: expired(self.signer, results.AUTHORIZATION, HOST,
                            certify_claims()),
            lambda: self.signer.sign(results.CHALLENGE, HOST, 60,
                                     challenge_claims(os.urandom(32))),
        ]
        started = time.monotonic()
        for number in range(FLOOD):
            error = self.assertRaises(
                messaging.RemoteError, self.call, 'certify_migration_key',
                authorization_token=forgeries[number % len(forgeries)]())
            self.assertEqual('NotAuthorized', error.exc_type, error.value)
            self.assertIn('compute-1: certify-key refused: ', error.value)
        elapsed = time.monotonic() - started
        self.assertEqual(FLOOD, len(self.refusals_logged('certify-key')))
        # No key was made for any of them...
        self.assertEqual({}, self.manager._migration_keys)
        # ...so the verifier's authorization still gets one.
        self.genuine_certify(certify_claims())
        self.assertEqual(1, len(self.manager._migration_keys))
        self.addDetail('flood', content.text_content(
            '%d forged authorizations refused in %.1f s' % (FLOOD, elapsed)))

    def test_a_genuine_authorization_is_used_once(self):
        claims = certify_claims()
        token, _ = self.genuine_certify(claims)
        # Replayed as it was (captured off the bus).
        self.refused('certify_migration_key',
                     'the authorization was used already (replayed)',
                     authorization_token=token)
        # A second authorization for the same migration (the verifier's
        # retry): the same key, certified again; one key per migration.
        first = self.manager._migration_keys[claims['korora.migration'][
            'uuid']][0]
        again = dict(claims, eat_nonce=results.nonce_claim(os.urandom(32)))
        token, answer = self.genuine_certify(again)
        self.assertEqual(first, base64.b64decode(answer['unique']))
        self.assertEqual(1, len(self.manager._migration_keys))

    def test_an_authorization_for_another_host_or_step_is_refused(self):
        attempts = [
            # Signed for compute-2 (its manager's), sent to compute-1.
            (self.signer.sign(results.AUTHORIZATION, OTHER, 60,
                              certify_claims(host=OTHER)),
             'is about compute-2, not compute-1'),
            # About compute-1, but compute-2 is the migration's
            # destination.
            (self.signer.sign(results.AUTHORIZATION, HOST, 60,
                              certify_claims(host=OTHER)),
             'the migration\'s destination is compute-2'),
            # Another step's authorization of this host.
            (self.signer.sign(results.AUTHORIZATION, HOST, 60,
                              certify_claims(action=results.TRANSFER)),
             'the authorization is for transfer'),
            (self.signer.sign(results.AUTHORIZATION, HOST, 60,
                              certify_claims(role='source')),
             'this host is not the destination of the migration'),
        ]
        for token, reason in attempts:
            self.refused('certify_migration_key', reason,
                         authorization_token=token)
        self.assertEqual(len(attempts),
                         len(self.refusals_logged('certify-key')))
        self.assertEqual({}, self.manager._migration_keys)

    def test_host_local_calls_are_not_served_on_the_bus(self):
        # A MEASURE or COMMIT authorization crosses the bus inside the
        # verifier's answer to the hooks: a bus client may hold one.
        migration = certify_claims()['korora.migration']
        migration.update(source_host=HOST, dest_host=OTHER)
        tokens = {action: self.signer.sign(
            results.AUTHORIZATION, HOST, 60,
            {'korora.action': action, 'korora.role': results.ROLES[action],
             'korora.migration': migration,
             'eat_nonce': results.nonce_claim(os.urandom(32))})
            for action in (results.MEASURE, results.COMMIT)}
        counter = self.manager.counter.read()
        for method, arguments in (
                ('advance_counter', {}),
                ('advance_counter',
                 {'authorization_token': tokens[results.COMMIT]}),
                ('sign_manifest',
                 {'authorization_token': tokens[results.MEASURE]}),
                ('sign_manifest', {'block_migration': False}),
                ('open_transfer', {'envelope': None}),
                ('measure_arrival', {'vtpm_secret': None}),
                ('incoming', {}), ('stop', {}), ('start', {})):
            # Refused by the gate (the request context, a dict, lands
            # where the token would be), or the call does not fit:
            # oslo.messaging rebuilds a builtin exception as it is.
            self.assertRaises((messaging.RemoteError, TypeError), self.call,
                              method, **arguments)
        self.assertEqual(counter, self.manager.counter.read())
        # The manager still serves (stop was not obeyed).
        self.genuine_certify(certify_claims())


class TestQuoteIsNotAManifestSignature(base.TestCase):
    """The source's vTPM manager on RabbitMQ, enrolled with a real
    verifier database; a migration record in TRANSFERRING."""

    def setUp(self):
        super().setUp()
        self.useFixture(rabbitmq.RabbitMQBusFixture(CONF))
        self.useFixture(services.VerifierDatabaseFixture())
        self.signer = services.verifier_keys(self).signer
        tpm = self.useFixture(services.SoftwareTPMFixture())
        self.flags(ek_ca_bundle=tpm.ca_bundle)
        root = self.useFixture(fixtures.TempDir()).path
        self.backend = file_backend.FileStateBackend(root, SOURCE)
        self.backend.create_instance(INSTANCE, vtpm_state=os.urandom(4096),
                                     nvram=os.urandom(1024))
        self.source = self.useFixture(services.VTPMManagerFixture(
            SOURCE, tpm, state_backend=self.backend))
        self.api = rpcapi.VTPMManagerAPI(self.signer)
        enrollment.enroll(self.api, SOURCE)
        self.ak_public = db.host_get(SOURCE).ak_public
        self.steps = migrations.MigrationSteps(
            CONF, attestation.Attestor(self.api), self.api, self.signer)
        self.trusted = results.TrustedKeys.of(self.signer)
        record = records.create(None, INSTANCE, SOURCE, DEST, host=DEST,
                                details={'dest_nonce': '5e' * 32})
        records.transition(record.uuid, SOURCE, states.PEERS_ATTESTED,
                           details={'source_nonce': 'd1' * 32})
        records.transition(record.uuid, SOURCE, states.KEY_CERTIFIED)
        self.record = records.transition(record.uuid, DEST,
                                         states.TRANSFERRING)

    def document(self):
        return manifest_module.for_migration(
            migrations.migration_claims(self.record),
            self.source.manager.counter.read(),
            self.backend.measure(INSTANCE), manifest_module.DEPARTURE)

    def measured(self, text):
        """The verifier's signed answer to the source's manifest."""
        nonce = os.urandom(32)
        token = self.steps.measured(self.record.uuid, SOURCE, text, nonce)
        claims = self.trusted.verify(token, results.RESULT, subject=SOURCE,
                                     nonce=nonce)
        return results.host_status(claims, SOURCE)

    def test_an_attestation_quote_over_a_manifest_digest_is_refused(self):
        document = self.document()
        # The verifier's genuine challenge, its nonce the digest.
        quote = self.api.attest(SOURCE, document.digest())
        found = appraisal.appraise_quote(
            quote, appraisal.load_public_key(self.ak_public),
            purpose.qualifying_data(purpose.ATTEST, document.digest()),
            None, host=SOURCE)
        self.assertTrue(found.evidence_valid, found.summary())
        error = self.assertRaises(exception.ManifestError,
                                  manifest_module.check_signature, document,
                                  quote, self.ak_public, SOURCE)
        self.assertIn('the departure measurement is not signed by '
                      'compute-1\'s attestation key for that purpose',
                      str(error))
        self.assertIn('nonce mismatch', str(error))
        affirmed, reasons = self.measured(
            manifest_module.signed_text(document, quote))
        self.assertFalse(affirmed)
        self.assertIn('not signed by compute-1\'s attestation key for that '
                      'purpose', ' '.join(reasons))
        # A manifest that does not hold is evidence: quarantined.
        record = records.get(self.record.uuid)
        self.assertEqual(states.QUARANTINED, record.state)
        self.assertIn('manifest: ', record.reason)
        self.assertIsNone(record.manifest)

    def test_no_signed_challenge_makes_a_manifest_quote(self):
        # Not even the verifier's key gets a quote for the manifest
        # purpose over the bus.
        error = self.assertRaises(
            exception.TPMError, self.api.attest, SOURCE,
            self.document().digest(), purpose.MANIFEST)
        self.assertIn('the challenge names no purpose this manager quotes '
                      'for', str(error))

    def test_the_manifest_the_manager_signs_is_accepted(self):
        # The control: same TPM, same record, the manager's own
        # signature on the host's socket.
        nonce = os.urandom(32)
        claims = self.trusted.verify(
            self.steps.authorize(self.record.uuid, SOURCE, results.MEASURE,
                                 nonce), results.RESULT, subject=SOURCE,
            nonce=nonce)
        text = local_client.LocalManager(self.source.hook_socket, 10).\
            sign_manifest(claims['korora.authorization'], None, False)
        document, quote = manifest_module.load(text)
        self.assertEqual(self.document(), document)
        manifest_module.check_signature(document, quote, self.ak_public,
                                        SOURCE)
        affirmed, reasons = self.measured(text)
        self.assertTrue(affirmed, reasons)
        self.assertEqual(states.MEASURED,
                         records.get(self.record.uuid).state)


class TestAuditAnchorPurpose(base.TestCase):
    """Someone who can write the verifier's database rewrites the audit
    log, rehashes the chain and re-anchors the new head with a quote of
    the host's TPM over it, asked for over the bus."""

    def setUp(self):
        super().setUp()
        self.useFixture(rabbitmq.RabbitMQBusFixture(CONF))
        self.useFixture(services.VerifierDatabaseFixture())
        self.signer = services.verifier_keys(self).signer
        tpm = self.useFixture(services.SoftwareTPMFixture())
        self.flags(ek_ca_bundle=tpm.ca_bundle)
        self.useFixture(services.VTPMManagerFixture(HOST, tpm))
        self.api = rpcapi.VTPMManagerAPI(self.signer)
        enrollment.enroll(self.api, HOST)
        record = records.create(None, INSTANCE, HOST, OTHER)
        records.transition(record.uuid, OTHER, states.PEERS_ATTESTED,
                           details={'evidence': b'quote'})

    def rewrite(self, seq, details):
        """Change entry seq's details and recompute every hash from it."""
        with raw_sql.session() as session:
            rows = session.query(models.AuditEntry).order_by(
                models.AuditEntry.seq).all()
            previous = audit_log.GENESIS
            for row in rows:
                if row.seq == seq:
                    row.details = audit_log.canonical_details(details)
                if row.seq >= seq:
                    row.prev_hash = previous
                    row.entry_hash = audit_log.compute_hash(
                        previous, row.seq, row.migration_uuid, row.host,
                        row.step, row.from_state, row.to_state, row.details,
                        row.created_at)
                previous = row.entry_hash
        return previous

    def test_an_attestation_quote_is_no_anchor(self):
        # The operator anchors the log (korora-manage audit anchor) and
        # keeps the head it prints outside the database.
        out = self.useFixture(fixtures.StringStream('stdout'))
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out.stream))
        self.assertEqual(0, manage.audit_anchor(
            argparse.Namespace(host_name=HOST)))
        head = audit.head_entry()
        kept = '%d:%s' % (head.seq, head.entry_hash)
        out.stream.flush()
        printed = out.getDetails()['stdout'].as_text()
        self.assertIn('audit log anchored at seq %d (entry hash %s) by '
                      'compute-1\'s TPM' % (head.seq, head.entry_hash),
                      printed)
        self.assertIn('keep "%s" outside the database' % kept, printed)
        self.assertTrue(audit.verify(expected_head=(
            head.seq, head.entry_hash)).ok)
        anchor = audit.anchors()[-1]
        self.assertEqual(
            purpose.qualifying_data(purpose.ANCHOR,
                                    bytes.fromhex(head.entry_hash)),
            evidence.parse_attestation(anchor.quote_message).extra_data)
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())
        self.assertEqual(1, report.anchors)
        new_head = self.rewrite(2, {'evidence': 'sha256:' + 'ab' * 32})
        # A genuine quote of the same TPM over the new head, for the
        # attest purpose (the only one a challenge over the bus gets).
        quote = self.api.attest(HOST, bytes.fromhex(new_head))
        with raw_sql.session() as session:
            row = session.get(models.AuditAnchor, anchor.seq)
            row.quote_message = quote.message
            row.quote_signature = quote.signature
            row.pcr_values = canonical(pcr_values.to_json(quote.pcr_values))
        report = audit.verify()
        self.assertFalse(report.ok)
        self.assertEqual([(anchor.seq, audit.ANCHOR_MISMATCH)],
                         [(p.seq, p.code) for p in report.problems])
        self.assertIn('the log up to seq %d was rewritten' % anchor.seq,
                      str(report.first_problem))


class TestForgedManifestInNova(
        test_live_migration_hooks_in_nova.KororaMigrationTestBase):
    """Root on the source alters the vTPM state in flight and has its
    manager hand over, as the manifest's signature, a quote the verifier
    asked for over the bus, over the digest of a manifest of the altered
    state."""

    def replace_local_manager(self, host, **lies):
        honest = self.managers[host].manager
        rogue = test_live_migration_hooks_in_nova.RogueEndpoint(
            honest, '2.0', **lies)
        served = self.useFixture(services.HookServerFixture(
            host, CONF, manager=rogue))
        nova_cloud.KororaHookedFakeDriver.local_sockets[host] = served.path
        return honest

    def test_tampered_state_with_a_borrowed_quote_is_quarantined(self):
        self.driver(SOURCE).in_flight = (
            lambda name, data: data[:-1] + bytes([data[-1] ^ 1])
            if name == file_backend.STATE_FILE else data)
        honest = self.managers[SOURCE].manager
        arrived = file_backend.FileStateBackend(self.state_root, DEST)
        api = rpcapi.VTPMManagerAPI(self.verifier_keys.signer)
        forged = []

        def sign_manifest(authorization_token, vtpm_secret=None,
                          block_migration=False):
            claims = honest.gate.authorize(authorization_token,
                                           results.MEASURE)
            migration = claims['korora.migration']
            # The manifest of what arrives (the altered state)...
            document = manifest_module.for_migration(
                migration, honest.counter.read(),
                arrived.measure(migration['instance_uuid'],
                                vtpm_secret=vtpm_secret),
                manifest_module.DEPARTURE)
            # ...signed by a genuine quote of this TPM over its digest.
            quote = api.attest(SOURCE, document.digest())
            forged.append(document)
            return manifest_module.signed_text(document, quote)

        self.replace_local_manager(SOURCE, sign_manifest=sign_manifest)
        migration = self.live_migrate_api(self.server, host=DEST)
        self.assertEqual(1, len(forged))
        self.assertEqual('error', migration['status'])
        record = self.wait_for_final_record()
        self.assertEqual(states.QUARANTINED, record.state)
        self.assertNotIn(states.COMMITTED,
                         [e.to_state for e in records.history(record.uuid)])
        self.assertIsNone(record.manifest)
        # A manifest that does not hold is evidence: quarantined at once,
        # naming it (not held for a manifest that will never come).
        self.assertIn('manifest: ', record.reason)
        self.assertIn('not signed by compute-1\'s attestation key for that '
                      'purpose', record.reason)
        # The verifier said why it took no manifest.
        self.assertIn('not signed by compute-1\'s attestation key for that '
                      'purpose', self.stdlog.logger.output)
        # Held, paused, on the destination: never running the altered
        # state.
        server = self.wait_for_server(self.server, 'ERROR')
        self.assertEqual(DEST, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(3, server['OS-EXT-STS:power_state'])
        self.assertEqual([(self.server['id'], 'manifest')],
                         [(n['instance_uuid'], n['item'])
                          for n in self.integrity_notifications()])
        # The source keeps its intact copy.
        self.assertEqual([SOURCE, DEST], self.hosts_with_state())
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())


class TestForgedVerifierAnswers(
        test_live_migration_hooks_in_nova.KororaMigrationTestBase):

    def replace_verifier(self, **lies):
        """Put a lying verifier in the genuine one's place on the bus."""
        genuine = self.verifier_fixture
        genuine.server.stop()
        genuine.server.wait()
        rogue = test_live_migration_hooks_in_nova.RogueEndpoint(
            genuine.verifier, '1.2', **lies)
        server = rpc.get_server(CONF.korora.verifier_topic,
                                genuine.server_name, [rogue])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)

    def assert_refused_on_the_source(self, *words):
        error = self.assertRaises(
            nova_exceptions.ClientException, self.live_migrate_novaclient,
            self.server, host=DEST, microversion='2.1')
        for word in words:
            self.assertIn(word, str(error))
        server = self.wait_for_server(self.server, 'ACTIVE')
        self.assertEqual(SOURCE, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([SOURCE], self.hosts_with_state())
        self.assertNotIn(self.server['id'], self.driver(DEST).vtpm_secrets)
        self.assertLessEqual(
            set(self.driver(DEST).call_names(self.server['id'])),
            {'check_can_live_migrate_destination'})
        return error

    def forged_attest_destination(self, signing_key):
        """migration_attest_destination, answered as the attacker wants:
        the destination affirmed, and a key of compute-3's TPM (root on
        compute-3 would open the sealed vTPM secret) as its certified
        key for this migration; signed by signing_key, the header naming
        the key id self.kid (None: signing_key's own)."""
        other = self.managers['compute-3'].manager
        self.sent = []

        def answer(ctxt, migration_uuid, source, nonce):
            record = records.get(migration_uuid)
            key = certify.create_certified_storage_key(
                other.connection, other.ak,
                purpose.qualifying_data(purpose.CERTIFY, os.urandom(32)))
            claims = migrations.migration_claims(record)
            claims['state'] = states.KEY_CERTIFIED
            body = {'eat_nonce': results.nonce_claim(
                        base64.b64decode(nonce)),
                    'submods': {DEST: {'ear.status': results.AFFIRMING}},
                    'korora.migration': claims,
                    'korora.key': {
                        'public': base64.b64encode(key.public).decode(),
                        'unique': base64.b64encode(key.unique).decode()}}
            if self.kid is None:
                token = signing_key.sign(results.RESULT, DEST, 60, body)
            else:
                token = spoofed(signing_key, results.RESULT, DEST, body,
                                self.kid)
            self.sent.append(token)
            return token
        return answer

    def test_an_answer_not_signed_by_the_verifier_is_refused(self):
        self.replace_verifier(migration_attest_destination=(
            self.forged_attest_destination(attacker_key())))
        seen = set()
        for kid, reason in ((None, NOT_PINNED),
                            (self.verifier_keys.signer.kid, BAD_SIGNATURE)):
            self.kid = kid
            self.sent = []
            self.assert_refused_on_the_source(
                'Korora: the answer to migration_attest_destination is not '
                'believed: ' + reason)
            self.assertEqual(1, len(self.sent))
            # The hooks aborted the record the genuine verifier opened.
            record = self.wait_for_final_record()
            self.assertNotIn(record.uuid, seen)
            seen.add(record.uuid)
            self.assertEqual(states.ABORTED, record.state)
            self.assertIn(reason, record.reason)
            # Certified with the request, the genuine key was never sealed
            # to, nor was compute-3's.
            self.assertNotIn(states.TRANSFERRING,
                             [e.to_state
                              for e in records.history(record.uuid)])
        report = audit.verify()
        self.assertTrue(report.ok, report.summary())

    def test_a_verifier_whose_key_is_not_pinned_is_refused(self):
        # A whole verifier of the attacker's on the verifier's topic, in
        # the genuine one's place: its answers are signed, but by a key
        # no host pinned.
        self.verifier_fixture.server.stop()
        self.verifier_fixture.server.wait()
        self.useFixture(services.VerifierFixture(
            attacker_key(), server=self.verifier_fixture.server_name))
        self.assert_refused_on_the_source(
            'Korora: the answer to migration_request is not believed: '
            + NOT_PINNED)
        # Its challenges did not make the source's TPM quote either.
        self.assertIn('compute-1: attest refused: ' + NOT_PINNED,
                      self.stdlog.logger.output)
        # What it recorded in the database it holds went nowhere.
        self.assertEqual([states.ABORTED], [
            r.state for r in records.list()
            if r.instance_uuid == self.server['id']])

    def test_a_replayed_verifier_answer_is_refused(self):
        # A genuine, affirming answer, taken off the bus from an earlier
        # call (its nonce another).
        signed_request = local_client.LocalManager(
            nova_cloud.KororaHookedFakeDriver.local_sockets[DEST],
            CALL_TIMEOUT).sign_request(self.server['id'], SOURCE)
        nonce, captured = verifier_rpcapi.VerifierAPI().migration_step(
            'migration_request', instance_uuid=self.server['id'],
            source=SOURCE, dest=DEST, signed_request=signed_request)
        claims = results.TrustedKeys.of(self.verifier_keys.signer).verify(
            captured, results.RESULT, subject=SOURCE, nonce=nonce)
        self.assertTrue(results.host_status(claims, SOURCE)[0])
        replayed = []

        def request(ctxt, instance_uuid, source, dest, nonce,
                    signed_request=None):
            replayed.append(nonce)
            return captured

        self.replace_verifier(migration_request=request)
        self.assert_refused_on_the_source(
            'Korora: the answer to migration_request is not believed: the '
            'verifier\'s attestation-result is not bound to this nonce '
            '(replayed?)')
        self.assertEqual(1, len(replayed))
        # Nothing moved: the only record is the captured call's, as that
        # call left it.
        found = [r for r in records.list()
                 if r.instance_uuid == self.server['id']]
        self.assertEqual([(claims['korora.migration']['uuid'],
                           states.KEY_CERTIFIED)],
                         [(r.uuid, r.state) for r in found])


class TestForgedMigrationRequests(base.TestCase):
    """Anyone on the bus asks the verifier to open migrations to DEST.

    Only a request DEST's vTPM manager signed, fresh and never used,
    opens a record; every record gets a key of DEST certified, so
    forged requests would otherwise fill DEST's pool of migration keys.
    A real verifier with its SQLite database, real vTPM managers on
    swtpm for the source, the destination and a third host, a real
    RabbitMQ broker; the attacker is a plain oslo.messaging client on
    the verifier's topic.
    """

    POLICY = 'compute-2026-11'

    def setUp(self):
        super().setUp()
        self.useFixture(rabbitmq.RabbitMQBusFixture(CONF))
        self.useFixture(services.VerifierDatabaseFixture())
        self.keys = services.verifier_keys(self)
        self.trusted = results.TrustedKeys.of(self.keys.signer)
        self.verifier = self.useFixture(
            services.VerifierFixture(self.keys.signer))
        operator = self.useFixture(services.OperatorKeyFixture(CONF))
        self.managers = {}
        for name in (SOURCE, DEST, 'compute-3'):
            tpm = self.useFixture(services.SoftwareTPMFixture())
            self.managers[name] = self.useFixture(
                services.VTPMManagerFixture(name, tpm))
        self.flags(ek_ca_bundle=tpm.ca_bundle)
        api = self.verifier.manager_api
        for name in self.managers:
            enrollment.enroll(api, name)
        attestation.record_policy(api, SOURCE, self.POLICY, 1, operator.key)
        for name in self.managers:
            db.host_set_policy(name, self.POLICY)
        self.client = messaging.get_rpc_client(
            rpc.get_transport(), messaging.Target(
                topic=CONF.korora.verifier_topic, version='1.2'))

    def local(self, host):
        return local_client.LocalManager(self.managers[host].hook_socket,
                                         CALL_TIMEOUT)

    def genuine(self, instance=INSTANCE, source=SOURCE, dest=DEST):
        """A request as dest's vTPM manager signs it."""
        return self.local(dest).sign_request(instance, source)

    def ask(self, signed_request, instance=INSTANCE, source=SOURCE,
            dest=DEST, **arguments):
        """migration_request as any bus client sends it; the claims of
        the verifier's answer, checked as a hook checks them."""
        nonce = os.urandom(32)
        if signed_request is not None:
            arguments['signed_request'] = signed_request
        token = self.client.prepare(timeout=CALL_TIMEOUT * 3).call(
            {}, 'migration_request', instance_uuid=instance, source=source,
            dest=dest, nonce=rpc.encode(nonce), **arguments)
        return self.trusted.verify(token, results.RESULT, subject=source,
                                   nonce=nonce)

    def refused(self, reason, signed_request, **arguments):
        claims = self.ask(signed_request, **arguments)
        affirmed, reasons = results.host_status(
            claims, arguments.get('source', SOURCE))
        self.assertFalse(affirmed, reasons)
        self.assertIn(reason, '; '.join(reasons))
        self.assertNotIn('korora.migration', claims)
        return reasons

    def records(self):
        return [(r.instance_uuid, r.dest_host, r.state)
                for r in records.list()]

    def test_a_genuine_request_opens_one_record(self):
        # The request's quote attests the destination; its key is
        # certified while the source is attested.
        claims = self.ask(self.genuine())
        self.assertTrue(results.host_status(claims, SOURCE)[0])
        migration = claims['korora.migration']
        self.assertEqual((INSTANCE, SOURCE, DEST, states.KEY_CERTIFIED),
                         (migration['instance_uuid'],
                          migration['source_host'], migration['dest_host'],
                          migration['state']))
        self.assertEqual([(INSTANCE, DEST, states.KEY_CERTIFIED)],
                         self.records())
        self.assertEqual(1, len(self.managers[DEST].manager._migration_keys))

    def test_a_request_quoted_long_before_its_key_is_refused(self):
        # Root on compute-2 had its manager sign a request while the host
        # was still good, and sends it later: the TPM's own clock between
        # that quote and the fresh certification of the key gives it
        # away (a clock that cannot be set back).
        self.flags(request_certify_window=1000)
        text = self.genuine()
        time.sleep(1.5)
        self.refused('its migration request was not quoted within 1000 ms '
                     'of its TPM\'s clock before its key was certified',
                     text)
        self.assertEqual([(INSTANCE, DEST, states.ABORTED)], self.records())
        # A request sent at once is within a window with room for a
        # busy machine (the default, 10 s).
        self.flags(request_certify_window=10000)
        claims = self.ask(self.genuine())
        self.assertEqual(states.KEY_CERTIFIED,
                         claims['korora.migration']['state'])

    def test_a_destination_found_untrusted_after_its_request_gets_no_key(self):
        record = protocol.MigrationProtocol(
            DEST, verifier_rpcapi.VerifierAPI(), self.trusted,
            self.local(DEST)).request(INSTANCE, SOURCE)
        self.assertEqual(states.KEY_CERTIFIED, record.state)
        # Then its PCR 10 changes and the verifier attests it (its watch).
        self.managers[DEST].extend_pcr(10, b'unexpected kernel module')
        self.assertFalse(self.verifier.attestor.attest(DEST).trusted)
        source = protocol.MigrationProtocol(
            SOURCE, verifier_rpcapi.VerifierAPI(), self.trusted,
            self.local(SOURCE))
        error = self.assertRaises(exception.StepRefused,
                                  source.attest_destination, record)
        self.assertIn('the destination host is not trusted: compute-2: PCR '
                      'sha256:10', str(error))
        self.assertIn('since migration %s was requested' % record.uuid,
                      str(error))
        self.assertEqual(states.ABORTED, records.get(record.uuid).state)

    def test_an_unsigned_request_is_refused(self):
        # A 1.1 client, or anyone who leaves the request out.
        self.refused('the migration request is not signed by compute-2\'s '
                     'vTPM manager', None)
        self.assertEqual([], self.records())

    def test_a_malformed_request_is_refused(self):
        text = self.genuine()
        for forged, reason in (
                ('', 'no signed migration request was sent'),
                ('x' * (1024 * 1024), 'the migration request is larger '
                                      'than 16384 bytes'),
                ('[' * 10000, 'the migration request is malformed'),
                (text[:-2], 'the migration request is malformed'),
                (text.replace('"version": 1', '"version": 9'),
                 'migration request version 9 is not 1')):
            self.refused(reason, forged)
        self.assertEqual([], self.records())

    def test_a_request_signed_by_another_tpm_is_refused(self):
        # Root on compute-3 has its own manager sign a request and makes
        # it name compute-2: compute-2's enrolled AK did not sign it.
        text = self.genuine(dest='compute-3').replace(
            '"dest_host": "compute-3"', '"dest_host": "compute-2"')
        self.assertIn('"dest_host": "compute-2"', text)
        reasons = self.refused('the destination host is not '
                               'trusted: compute-2: ', text)
        self.assertIn('signature', '; '.join(reasons))
        # Its request as it was signed is for compute-3 only.
        self.refused('the signed request is for instance %s from compute-1 '
                     'to compute-3, not %s from compute-1 to compute-2'
                     % (INSTANCE, INSTANCE), self.genuine(dest='compute-3'))
        self.assertEqual([], self.records())

    def test_a_request_for_another_migration_is_refused(self):
        text = self.genuine()
        other = str(uuid.uuid4())
        self.refused('the signed request is for instance %s from compute-1 '
                     'to compute-2, not %s' % (INSTANCE, other), text,
                     instance=other)
        self.refused('the signed request is for instance %s from compute-1 '
                     'to compute-2, not %s from compute-3'
                     % (INSTANCE, INSTANCE), text, source='compute-3')
        # The altered document no longer matches what the TPM signed.
        altered = text.replace(INSTANCE, other)
        self.refused('the destination host is not trusted: compute-2: ',
                     altered, instance=other)
        self.assertEqual([], self.records())

    def test_a_replayed_request_is_refused_and_the_first_stays(self):
        text = self.genuine()
        first = self.ask(text)['korora.migration']
        self.refused('the signed request of compute-2 was used already '
                     '(replay)', text)
        # The replay superseded nothing: the genuine record is as it was.
        self.assertEqual(states.KEY_CERTIFIED,
                         records.get(first['uuid']).state)
        self.assertEqual([(INSTANCE, DEST, states.KEY_CERTIFIED)],
                         self.records())

    def test_a_stale_request_is_refused(self):
        self.flags(result_lifetime=5)
        text = self.genuine()
        time.sleep(5 + 1.5)
        self.refused('more than 5 s ([korora] result_lifetime): stale or the '
                     'clocks differ', text)
        self.assertEqual([], self.records())

    def test_an_untrusted_destination_cannot_request(self):
        # An unexpected module on compute-2: its genuine, fresh request
        # quotes PCRs its policy does not allow.
        self.managers[DEST].extend_pcr(10, b'unexpected kernel module')
        self.refused('the destination host is not trusted: compute-2: PCR '
                     'sha256:10', self.genuine())
        self.assertEqual([], self.records())

    def test_a_flood_of_forged_requests_certifies_no_key(self):
        attacker_host = 'compute-3'
        genuine = self.genuine()
        forgeries = [
            (lambda: None, 'is not signed by compute-2\'s vTPM manager'),
            (lambda: base64.b64encode(os.urandom(64)).decode('ascii'),
             'the migration request is malformed'),
            (lambda: self.genuine(dest=attacker_host).replace(
                '"dest_host": "compute-3"', '"dest_host": "compute-2"'),
             'the destination host is not trusted: compute-2: '),
            (lambda: genuine.replace(INSTANCE, str(uuid.uuid4())),
             'the signed request is for instance'),
        ]
        source_api = verifier_rpcapi.VerifierAPI()
        started = time.monotonic()
        for number in range(FLOOD):
            forge, reason = forgeries[number % len(forgeries)]
            self.refused(reason, forge())
            # And the step that would certify a key, for a made-up
            # record: refused, nothing certified.
            nonce, token = source_api.migration_step(
                'migration_attest_destination',
                migration_uuid=str(uuid.uuid4()), source=SOURCE)
            claims = self.trusted.verify(token, results.RESULT,
                                         subject=SOURCE, nonce=nonce)
            self.assertIn('is recorded', '; '.join(
                results.host_status(claims, SOURCE)[1]))
        elapsed = time.monotonic() - started
        self.assertEqual([], self.records())
        self.assertEqual({}, self.managers[DEST].manager._migration_keys)
        # The genuine migration still gets its key.
        protocols = {
            host: protocol.MigrationProtocol(
                host, source_api, self.trusted, self.local(host))
            for host in (SOURCE, DEST)}
        record = protocols[DEST].request(INSTANCE, SOURCE)
        record, key = protocols[SOURCE].attest_destination(record)
        self.assertEqual(states.KEY_CERTIFIED, record.state)
        self.assertEqual([key.unique], [
            made.unique for made in
            self.managers[DEST].manager._migration_keys.values()])
        self.addDetail('flood', content.text_content(
            '%d forged requests and %d made-up key certifications refused '
            'in %.1f s' % (FLOOD, FLOOD, elapsed)))
