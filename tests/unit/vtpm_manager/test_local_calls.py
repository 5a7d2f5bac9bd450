"""nova-compute's calls to the vTPM manager of its own host, over the
host's root-only UNIX socket (local_client.LocalManager), each with the
verifier's authorization.

A real vTPM manager on a real swtpm, measuring an instance the tests
write as the fake driver's files (file_backend); the verifier's
authorizations are real ES256 tokens of the test's verifier key; the
migration key is certified over the message bus (oslo.messaging's
in-process driver) as the verifier asks for it; korora-libvirt-hook runs
as libvirt runs it, a process.
"""

import base64
import hashlib
import json
import os
import time

import fixtures

from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova import exception
from korora_nova.hooks import handover
from korora_nova.hooks import protocol
from korora_nova.hypervisors import file_backend
from korora_nova.migration import manifest as manifest_module
from tests import base
from korora_nova.demo import services
from tests.fixtures import hook_process
from tests.unit.hypervisors import shared
from korora_nova.vtpm_manager import local_client
from korora_nova.rpcapi import vtpm_manager as rpcapi

HOST = 'compute-1'
PEER = 'compute-2'
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
OTHER_INSTANCE = '1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'
OTHER_MIGRATION = '6a1d4e2f-8c3b-4d9e-b0f7-4c5e2d3f1a08'
SOURCE_NONCE = '5e' * 32
DEST_NONCE = 'd1' * 32
KEY_NONCE = bytes.fromhex('c4' * 32)
NVRAM = b'UEFI variables of instance 0b9d7a5e' * 64
DISK = b'a raw disk image' * 1024
SECRET = 'S3cr3t passphrase of the vTPM of instance 0b9d7a5e'
DOMAIN = 'instance-0b9d7a5e'
NOT_AUTHORIZED = 'the vTPM manager refused %s: compute-1: %s refused: '


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def migration(source=HOST, dest=PEER, uuid=MIGRATION, instance=INSTANCE):
    return {'uuid': uuid, 'instance_uuid': instance, 'source_host': source,
            'dest_host': dest, 'source_nonce': SOURCE_NONCE,
            'dest_nonce': DEST_NONCE}


# The manager's host is the source of an outgoing migration, the
# destination of an incoming one.
OUTGOING = migration()
INCOMING = migration(source=PEER, dest=HOST)


class LocalCallsTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(
            self.config.conf))
        self.keys = services.verifier_keys(self)
        self.backend = file_backend.FileStateBackend(
            self.useFixture(fixtures.TempDir()).path, HOST)
        self.state = shared.swtpm_state()
        self.backend.create_instance(INSTANCE, vtpm_state=self.state,
                                     nvram=NVRAM, disks={'vda': DISK},
                                     name=DOMAIN)
        self.host = self.useFixture(services.VTPMManagerFixture(
            HOST, state_backend=self.backend))
        self.local = local_client.LocalManager(self.host.hook_socket, 30)
        self.api = rpcapi.VTPMManagerAPI(self.keys.signer)
        self.ak_public = self.api.get_identity(HOST)[1]

    def authorization(self, action, about=None, host=HOST, signer=None,
                      nonce=KEY_NONCE, **claims):
        """The verifier's authorization of action by host."""
        body = {'korora.action': action,
                'korora.role': results.ROLES[action],
                'korora.migration': dict(about or (
                    OUTGOING if results.ROLES[action] == 'source'
                    else INCOMING)),
                'eat_nonce': results.nonce_claim(nonce)}
        body.update(claims)
        return (signer or self.keys.signer).sign(results.AUTHORIZATION,
                                                 host, 60, body)

    def stranger(self):
        folder = self.useFixture(fixtures.TempDir()).path
        return results.generate_signing_key(os.path.join(folder, 'k.pem'))

    def refused(self, error_class, call, *args, **kwargs):
        message = kwargs.pop('message')
        error = self.assertRaises(error_class, call, *args, **kwargs)
        self.assertIn(message, str(error))
        return error


class TestSignManifest(LocalCallsTestCase):

    def signed(self, block_migration=True, **authorization):
        return self.local.sign_manifest(
            self.authorization(results.MEASURE, **authorization), None,
            block_migration)

    def test_the_manifest_is_measured_and_signed_by_the_manager(self):
        text = self.signed()
        loaded, quote = manifest_module.load(text)
        verdict = manifest_module.check_signature(loaded, quote,
                                                  self.ak_public, HOST)
        self.assertTrue(verdict.evidence_valid, verdict.summary())
        self.assertEqual(
            purpose.qualifying_data(purpose.MANIFEST, loaded.digest()),
            verdict.attestation.extra_data)
        self.assertEqual(manifest_module.DEPARTURE, loaded.kind)
        self.assertEqual((MIGRATION, INSTANCE, HOST, PEER, SOURCE_NONCE,
                          DEST_NONCE), loaded.binding()[:-1])
        self.assertEqual(self.host.manager.counter.read(), loaded.counter)
        # The items are the files on this host, as the manager read them.
        items = dict(loaded.items.items())
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security',
                          'disk:vda'], list(items))
        self.assertEqual(sha256(self.state), items['vtpm-state'])
        self.assertEqual(sha256(NVRAM), items['nvram'])
        self.assertEqual(sha256(DISK), items['disk:vda'])
        self.assertEqual(
            self.backend.describe(INSTANCE).security_digest(),
            items['domain-security'])

    def test_without_block_migration_no_disk_is_measured(self):
        loaded, _ = manifest_module.load(self.signed(block_migration=False))
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security'],
                         list(loaded.items))

    def test_what_changed_on_disk_is_what_is_signed(self):
        before, _ = manifest_module.load(self.signed())
        with open(self.backend.path(INSTANCE, 'nvram.fd'), 'ab') as handle:
            handle.write(b'!')
        after, quote = manifest_module.load(self.signed())
        manifest_module.check_signature(after, quote, self.ak_public, HOST)
        self.assertEqual(sha256(NVRAM + b'!'), after.items['nvram'])
        self.assertEqual(['nvram'], list(
            name for name in before.items
            if before.items[name] != after.items[name]))

    def test_the_signature_stands_for_the_manifest_purpose_only(self):
        text = self.signed()
        # The same document presented as the arrival measurement.
        signed = json.loads(text)
        signed['manifest']['kind'] = manifest_module.ARRIVAL
        loaded, quote = manifest_module.load(json.dumps(signed))
        self.refused(exception.ManifestError,
                     manifest_module.check_signature, loaded, quote,
                     self.ak_public, HOST,
                     message='the arrival measurement is not signed by '
                             'compute-1\'s attestation key for that purpose')
        # A quote the verifier asked for over the manifest's digest is an
        # attestation, not a manifest signature.
        loaded, _ = manifest_module.load(text)
        attested = self.api.attest(HOST, loaded.digest())
        self.refused(exception.ManifestError,
                     manifest_module.check_signature, loaded, attested,
                     self.ak_public, HOST,
                     message='the departure measurement is not signed by '
                             'compute-1\'s attestation key for that purpose')

    def test_an_edited_item_no_longer_verifies(self):
        signed = json.loads(self.signed())
        signed['manifest']['items'][0][1] = 'ab' * 32
        loaded, quote = manifest_module.load(json.dumps(signed))
        self.refused(exception.ManifestError,
                     manifest_module.check_signature, loaded, quote,
                     self.ak_public, HOST, message='not signed by compute-1')

    def test_the_manifest_carries_the_counter_commit_advances(self):
        first, _ = manifest_module.load(self.signed())
        advanced = self.local.advance_counter(self.authorization(
            results.COMMIT))
        self.assertEqual(first.counter + 1, advanced)
        second, _ = manifest_module.load(self.signed())
        self.assertEqual(advanced, second.counter)

    def test_a_retried_commit_does_not_advance_the_counter_twice(self):
        before = self.host.manager.counter.read()
        first = self.local.advance_counter(self.authorization(
            results.COMMIT))
        # The verifier did not record the commit; the source asks again,
        # with the verifier's new authorization for the same migration.
        again = self.local.advance_counter(self.authorization(
            results.COMMIT))
        self.assertEqual((before + 1, before + 1), (first, again))
        self.assertEqual(before + 1, self.host.manager.counter.read())
        # Another migration's commit advances it.
        other = self.local.advance_counter(self.authorization(
            results.COMMIT, about=migration(uuid=OTHER_MIGRATION)))
        self.assertEqual(before + 2, other)

    def test_a_restarted_manager_remembers_the_advance(self):
        first = self.local.advance_counter(self.authorization(
            results.COMMIT))
        self.host.stop()
        restarted = self.useFixture(services.VTPMManagerFixture(
            HOST, self.host.tpm_fixture, state_path=self.host.state_path,
            state_backend=self.backend))
        local = local_client.LocalManager(restarted.hook_socket, 30)
        self.assertEqual(first, local.advance_counter(self.authorization(
            results.COMMIT)))
        self.assertEqual(first, restarted.manager.counter.read())

    def test_without_an_authorization_it_is_refused(self):
        for token in (None, '', 'not a token'):
            self.refused(exception.TPMError, self.local.sign_manifest,
                         token, None, True,
                         message=NOT_AUTHORIZED % ('sign_manifest',
                                                   'measure'))

    def test_a_wrong_authorization_is_refused(self):
        for token, reason in (
                (self.authorization(results.TRANSFER, about=OUTGOING),
                 'the authorization is for transfer'),
                (self.authorization(results.MEASURE, host=PEER),
                 'is about compute-2, not compute-1'),
                (self.authorization(results.MEASURE, about=INCOMING),
                 'the migration\'s source is compute-2'),
                (self.authorization(results.MEASURE,
                                    signer=self.stranger()),
                 'not signed by a pinned verifier key'),
                (self.keys.signer.sign(results.RESULT, HOST, 60, {
                    'korora.action': results.MEASURE}),
                 'a attestation-result was sent where a authorization was '
                 'expected')):
            error = self.refused(exception.TPMError, self.local.sign_manifest,
                                 token, None, True,
                                 message=NOT_AUTHORIZED % ('sign_manifest',
                                                           'measure'))
            self.assertIn(reason, str(error))

    def test_an_authorization_signs_one_manifest(self):
        token = self.authorization(results.MEASURE)
        self.local.sign_manifest(token, None, False)
        self.refused(exception.TPMError, self.local.sign_manifest, token,
                     None, False,
                     message='the authorization was used already '
                             '(replayed)')

    def test_an_unknown_instance_names_no_item(self):
        error = self.refused(
            exception.TPMError, self.local.sign_manifest,
            self.authorization(results.MEASURE, about=migration(
                instance=OTHER_INSTANCE)), None, False,
            message='the vTPM manager refused sign_manifest: ')
        self.assertIn(OTHER_INSTANCE, str(error))

    def test_a_malformed_vtpm_secret_is_refused(self):
        self.refused(exception.TPMError, self.local.sign_manifest,
                     self.authorization(results.MEASURE), 'p' * 1025, False,
                     message='a vTPM secret is 1 to 1024 characters')


class TestMeasureArrival(LocalCallsTestCase):

    def verify_token(self, disks=('vda',), counter=7, **claims):
        return self.authorization(results.VERIFY, **{
            'korora.disks': list(disks), 'korora.counter': counter},
            **claims)

    def test_the_arrival_is_signed_for_its_purpose(self):
        text = self.local.measure_arrival(self.verify_token(), None)
        loaded, quote = manifest_module.load(text)
        manifest_module.check_signature(loaded, quote, self.ak_public, HOST)
        self.assertEqual(manifest_module.ARRIVAL, loaded.kind)
        self.assertEqual(7, loaded.counter)
        self.assertEqual((MIGRATION, INSTANCE, PEER, HOST, SOURCE_NONCE,
                          DEST_NONCE, 7), loaded.binding())
        self.assertEqual(sha256(DISK), loaded.items['disk:vda'])
        self.assertEqual(sha256(self.state), loaded.items['vtpm-state'])

    def test_a_missing_file_names_the_item(self):
        os.remove(self.backend.path(INSTANCE, 'nvram.fd'))
        error = self.refused(
            exception.MeasurementFailed, self.local.measure_arrival,
            self.verify_token(), None,
            message='the vTPM manager refused measure_arrival: ')
        self.assertEqual('nvram', error.item)
        self.assertIn('nvram.fd of instance %s on host compute-1'
                      % INSTANCE, str(error))

    def test_a_missing_disk_names_the_disk(self):
        os.remove(self.backend.path(INSTANCE, 'disk.vda'))
        error = self.assertRaises(exception.MeasurementFailed,
                                  self.local.measure_arrival,
                                  self.verify_token(), None)
        self.assertEqual('disk:vda', error.item)

    def test_a_measurement_authorization_is_not_for_the_arrival(self):
        self.refused(exception.TPMError, self.local.measure_arrival,
                     self.authorization(results.MEASURE, about=INCOMING),
                     None, message=NOT_AUTHORIZED % ('measure_arrival',
                                                     'verify'))

    def test_malformed_disks_in_the_authorization(self):
        for disks in ([5], ['vd%d' % i for i in range(65)]):
            self.refused(exception.TPMError, self.local.measure_arrival,
                         self.verify_token(disks=disks), None,
                         message='the authorization names malformed disks')


class TestOpenTransfer(LocalCallsTestCase):

    def record(self, about=INCOMING):
        return protocol.MigrationRecord(
            about['uuid'], about['instance_uuid'], about['source_host'],
            about['dest_host'], 'KEY_CERTIFIED')

    def certified(self, about=INCOMING):
        """The migration key the manager certifies for the verifier."""
        return self.api.certify_migration_key(HOST, self.authorization(
            results.CERTIFY_KEY, about=about))

    def transfer(self, key, about=INCOMING, **claims):
        return self.authorization(results.TRANSFER, about=about, **{
            'korora.key_unique': base64.b64encode(key.unique).decode(
                'ascii')}, **claims)

    def sealed(self, key, about=INCOMING, secret=SECRET):
        envelope = handover.seal_secret(key, secret,
                                        handover.binding(self.record(about)))
        return handover.parse(envelope)

    def open(self, key, fields, about=INCOMING):
        return self.local.open_transfer(self.transfer(key, about),
                                        handover.duplicate_fields(fields))

    def admission(self, instance=INSTANCE):
        """korora-libvirt-hook run for the incoming domain of instance."""
        domain = file_backend.make_domain_xml(instance, name=DOMAIN)
        return hook_process.run(
            hook_process.hook_command() + [
                '--socket', self.host.hook_socket, DOMAIN, 'migrate',
                'begin', '-'], domain.encode('utf-8'),
            cwd=self.useFixture(fixtures.TempDir()).path)

    def test_the_sealed_secret_opens_with_the_certified_key(self):
        key = self.certified()
        fields = self.sealed(key)
        data_key = self.open(key, fields)
        self.assertEqual(handover.DATA_KEY_SIZE, len(data_key))
        self.assertEqual(SECRET, handover.open_with(
            data_key, fields, handover.binding(self.record())))

    def test_a_secret_opens_once(self):
        key = self.certified()
        fields = self.sealed(key)
        self.open(key, fields)
        # A second authorization of the transfer: the key is gone.
        self.refused(exception.TPMError, self.open, key, fields,
                     message='the secret is sealed to a key this vTPM '
                             'manager did not certify for migration %s, '
                             'used already or let expire' % MIGRATION)
        # The same authorization again: replayed.
        token = self.transfer(key)
        self.local.open_transfer(token)
        self.refused(exception.TPMError, self.local.open_transfer, token,
                     handover.duplicate_fields(fields),
                     message='(replayed)')

    def test_the_data_key_is_bound_to_its_migration(self):
        key = self.certified()
        fields = self.sealed(key)
        data_key = self.open(key, fields)
        self.refused(exception.HandoverError, handover.open_with, data_key,
                     fields, handover.binding(self.record(migration(
                         source=PEER, dest=HOST, uuid=OTHER_MIGRATION))),
                     message='the sealed vTPM secret was changed or is not '
                             'for this migration')

    def test_an_authorization_naming_another_key_is_refused(self):
        key = self.certified()
        other = self.certified(migration(source=PEER, dest=HOST,
                                         uuid=OTHER_MIGRATION))
        fields = self.sealed(other)
        self.refused(exception.TPMError, self.local.open_transfer,
                     self.transfer(key), handover.duplicate_fields(fields),
                     message='the secret is sealed to another key than the '
                             'one the verifier certified for migration %s'
                     % MIGRATION)

    def test_sealed_fields_that_are_not_an_object_are_refused(self):
        # Found by reading what the fuzzers cannot reach: the local
        # call's envelope is whatever JSON nova-compute sent.
        key = self.certified()
        self.refused(exception.TPMError, self.local.open_transfer,
                     self.transfer(key), ['unique', 'public'],
                     message="the vTPM manager refused open_transfer: "
                             "compute-1: the sealed secret's fields are "
                             "not an object")

    def test_a_secret_sealed_to_another_migrations_key_is_refused(self):
        # The authorization names the key, but the manager made that key
        # for another migration.
        other_about = migration(source=PEER, dest=HOST,
                                uuid=OTHER_MIGRATION)
        other = self.certified(other_about)
        self.certified()
        fields = self.sealed(other, other_about)
        self.refused(exception.TPMError, self.local.open_transfer,
                     self.transfer(other), handover.duplicate_fields(fields),
                     message='did not certify for migration %s' % MIGRATION)
        # That key was not used up: its own migration still opens it.
        self.assertEqual(SECRET, handover.open_with(
            self.open(other, fields, other_about), fields,
            handover.binding(self.record(other_about))))

    # Over the in-process bus the manager's exception arrives as it is;
    # through a broker as a TPMError: both are KororaErrors.

    def test_one_key_per_migration(self):
        # A second authorization (the verifier retrying after its answer
        # was lost) gets the same key, certified again.
        first = self.certified()
        again = self.certified()
        self.assertEqual((first.unique, first.public),
                         (again.unique, again.public))
        self.assertNotEqual(first.attestation, again.attestation)
        self.assertEqual(1, len(self.host.manager._migration_keys))

    def wait_for(self, what, predicate):
        for _ in range(400):
            if predicate():
                return
            time.sleep(0.025)
        self.fail('never: %s' % what)

    def test_the_next_migrations_key_is_made_ahead(self):
        # Background work waits this long after a migration call.
        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.vtpm_manager.manager.QUIET_AFTER_MIGRATION', 0.3))
        manager = self.host.manager
        self.wait_for('a key made ahead',
                      lambda: manager._spare_key is not None)
        ahead = manager._spare_key
        key = self.certified()
        # The migration got the key made ahead, still loaded for the
        # import; the next one is made after the migration's calls.
        self.assertEqual(ahead.unique, key.unique)
        self.assertIs(ahead, manager._migration_keys[MIGRATION].loaded)
        fields = self.sealed(key)
        self.assertEqual(SECRET, handover.open_with(
            self.open(key, fields), fields, handover.binding(self.record())))
        self.wait_for('the used key flushed and the next made ahead',
                      lambda: manager._spare_key is not None
                      and not manager._to_release)
        self.assertNotEqual(ahead.unique, manager._spare_key.unique)

    def test_keys_of_migrations_that_never_come_are_unloaded(self):
        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.vtpm_manager.manager.QUIET_AFTER_MIGRATION', 0.1))
        self.useFixture(fixtures.MonkeyPatch(
            'korora_nova.vtpm_manager.manager.KEY_KEPT', 0.2))
        manager = self.host.manager
        key = self.certified()
        # Its transfer does not come (refused, aborted): the key leaves
        # the TPM's few object slots, and is made again if it comes.
        self.wait_for('the waiting key unloaded', lambda: manager.
                      _migration_keys[MIGRATION].loaded is None)
        fields = self.sealed(key)
        self.assertEqual(SECRET, handover.open_with(
            self.open(key, fields), fields, handover.binding(self.record())))

    def test_a_key_is_certified_only_with_an_authorization(self):
        for token in (None,
                      self.authorization(results.CERTIFY_KEY,
                                         signer=self.stranger()),
                      self.authorization(results.CERTIFY_KEY, about=OUTGOING),
                      self.authorization(results.TRANSFER)):
            self.refused(exception.KororaError,
                         self.api.certify_migration_key, HOST, token,
                         message='compute-1: certify-key refused: ')

    def test_the_incoming_domain_is_admitted_only_after_the_transfer(self):
        before = self.admission()
        self.assertEqual(1, before.status, before)
        self.assertIn('Korora: incoming live migration of domain %s '
                      'refused: no Korora-approved migration of instance '
                      '%s to compute-1' % (DOMAIN, INSTANCE), before.stderr)
        key = self.certified()
        # A certified key alone does not admit it.
        self.assertEqual(1, self.admission().status)
        self.open(key, self.sealed(key))
        after = self.admission()
        self.assertEqual(0, after.status, after)
        self.assertEqual('', after.stderr)
        other = self.admission(OTHER_INSTANCE)
        self.assertEqual(1, other.status, other)
        self.assertIn('no Korora-approved migration of instance %s'
                      % OTHER_INSTANCE, other.stderr)

    def test_a_transfer_without_a_sealed_secret_approves_too(self):
        self.assertIsNone(self.local.open_transfer(self.authorization(
            results.TRANSFER)))
        self.assertEqual(0, self.admission().status)

    def test_a_refused_transfer_approves_nothing(self):
        for token in (self.authorization(results.TRANSFER,
                                         signer=self.stranger()),
                      self.authorization(results.TRANSFER, host=PEER),
                      self.authorization(results.TRANSFER, about=migration(
                          source=PEER, dest='compute-3'))):
            self.assertRaises(exception.TPMError, self.local.open_transfer,
                              token)
        refused = self.admission()
        self.assertEqual(1, refused.status, refused)

    def test_the_arrival_measurement_ends_the_approval(self):
        self.local.open_transfer(self.authorization(results.TRANSFER))
        self.assertEqual(0, self.admission().status)
        self.local.measure_arrival(self.authorization(
            results.VERIFY, **{'korora.disks': [], 'korora.counter': 3}),
            None)
        self.assertEqual(1, self.admission().status)


class TestLocalProtocol(LocalCallsTestCase):

    def test_unknown_calls_are_refused(self):
        client = local_client.LocalManager(self.host.hook_socket, 10)
        error = self.assertRaises(exception.TPMError, client._call,
                                  'read_counter')
        self.assertIn("the vTPM manager refused read_counter: no local call "
                      "'read_counter' here", str(error))

    def test_no_manager_at_the_socket(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'missing.sock')
        client = local_client.LocalManager(path, 2)
        error = self.assertRaises(exception.TPMConnectionError,
                                  client.advance_counter,
                                  self.authorization(results.COMMIT))
        self.assertIn('the vTPM manager of this host cannot be reached at %s'
                      % path, str(error))
