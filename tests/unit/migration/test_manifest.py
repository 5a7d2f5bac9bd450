"""Step 4 of a live migration: the integrity manifest the source's vTPM
manager measures and signs, and the source's monotonic counter it is
bound to.

A real vTPM manager on its own swtpm measures an instance the test
writes (file_backend) and quotes over the manifest's digest under the
manifest purpose; nova-compute asks it over the host's UNIX socket
with an authorization signed by the test's verifier key.
"""

import json
import uuid

import fixtures

from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova import exception
from korora_nova.hypervisors import base as hypervisors
from korora_nova.hypervisors import file_backend
from korora_nova.migration import manifest as manifest_module
from tests import base
from korora_nova.demo import services
from tests.unit.hypervisors import shared
from korora_nova.vtpm_manager import local_client

SOURCE = 'compute-1'
DEST = 'compute-2'
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'
OTHER_UUID = '6a1d4e2f-8c3b-4d9e-b0f7-4c5e2d3f1a08'
SOURCE_NONCE = '5e' * 32
DEST_NONCE = 'd1' * 32
NVRAM = b'UEFI variables' * 128
DISK = b'raw disk' * 512
ITEMS = (('vtpm-state', '1f' * 32), ('nvram', '2e' * 32),
         ('domain-security', '3d' * 32), ('disk:vda', '4c' * 32))
FIELDS = ('migration_uuid', 'instance_uuid', 'source_host', 'dest_host',
          'source_nonce', 'dest_nonce')
NOT_SIGNED = ('the %(kind)s measurement is not signed by %(host)s\'s '
              'attestation key for that purpose: untrusted: %(host)s: ')
REPLAYED = 'nonce mismatch: stale or replayed evidence'


def make_manifest(counter=7, items=ITEMS, kind=manifest_module.DEPARTURE,
                  **fields):
    values = dict(migration_uuid=MIGRATION, instance_uuid=INSTANCE,
                  source_host=SOURCE, dest_host=DEST,
                  source_nonce=SOURCE_NONCE, dest_nonce=DEST_NONCE)
    values.update(fields)
    return manifest_module.Manifest(counter=counter,
                                    items=hypervisors.Measurement(items),
                                    kind=kind, **values)


def edited(text, change):
    """The signed text after change(signed_document) edited it."""
    signed = json.loads(text)
    change(signed)
    return json.dumps(signed, sort_keys=True)


def setter(part, name, value):
    def change(signed):
        signed[part][name] = value
    return change


def remover(part, name):
    def change(signed):
        del signed[part][name]
    return change


class SourceManagerTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(
            self.config.conf))
        self.keys = services.verifier_keys(self)
        self.tpm = self.useFixture(services.SoftwareTPMFixture())
        self.backend = file_backend.FileStateBackend(
            self.useFixture(fixtures.TempDir()).path, SOURCE)
        self.backend.create_instance(INSTANCE,
                                     vtpm_state=shared.swtpm_state(),
                                     nvram=NVRAM, disks={'vda': DISK})
        self.source = self.start(SOURCE)

    def start(self, host, tpm=None, state_path=None, backend=None):
        started = self.useFixture(services.VTPMManagerFixture(
            host, tpm or self.tpm, state_path=state_path,
            state_backend=backend or self.backend))
        self.local = local_client.LocalManager(started.hook_socket, 30)
        return started

    @property
    def ak_public(self):
        return self.source.manager.ak.public

    def authorization(self, action, host=SOURCE, **migration):
        claims = {'uuid': MIGRATION, 'instance_uuid': INSTANCE,
                  'source_host': host, 'dest_host': DEST,
                  'source_nonce': SOURCE_NONCE, 'dest_nonce': DEST_NONCE}
        claims.update(migration)
        return self.keys.signer.sign(results.AUTHORIZATION, host, 60, {
            'korora.action': action, 'korora.role': results.ROLES[action],
            'korora.migration': claims,
            'eat_nonce': results.nonce_claim(b'n' * 32)})

    def sign(self, block_migration=True, **migration):
        """The manifest the source's manager measures and signs."""
        return self.local.sign_manifest(
            self.authorization(results.MEASURE, **migration), None,
            block_migration)

    def advance(self):
        """The commit of a new migration (the manager advances the
        counter once per migration)."""
        return self.local.advance_counter(self.authorization(
            results.COMMIT, uuid=str(uuid.uuid4())))


class ManifestTestCase(SourceManagerTestCase):

    def setUp(self):
        super().setUp()
        self.text = self.sign()
        self.manifest, _ = manifest_module.load(self.text)

    def load_error(self, text, message):
        error = self.assertRaises(exception.ManifestError,
                                  manifest_module.load, text)
        self.assertIn(message, str(error))
        return error

    def signature_error(self, text, reason, host=SOURCE):
        loaded, quote = manifest_module.load(text)
        error = self.assertRaises(exception.ManifestError,
                                  manifest_module.check_signature, loaded,
                                  quote, self.ak_public, host)
        self.assertIn(NOT_SIGNED % {'host': host, 'kind': loaded.kind},
                      str(error))
        self.assertIn(reason, str(error))
        return error


class TestSignedManifest(ManifestTestCase):

    def test_sign_load_and_check(self):
        loaded, quote = manifest_module.load(self.text)
        self.assertEqual(self.manifest, loaded)
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security',
                          'disk:vda'], list(loaded.items))
        self.assertEqual(
            dict(self.backend.measure(INSTANCE, block_migration=True)
                 .items()), dict(loaded.items.items()))
        verdict = manifest_module.check_signature(loaded, quote,
                                                  self.ak_public, SOURCE)
        self.assertTrue(verdict.evidence_valid, verdict.summary())
        self.assertEqual(
            purpose.qualifying_data(purpose.MANIFEST, loaded.digest()),
            verdict.attestation.extra_data)
        self.assertEqual('quote', verdict.attestation.type)
        self.assertTrue(verdict.pcr_values)

    def test_the_document_is_what_was_signed(self):
        signed = json.loads(self.text)
        self.assertEqual(self.manifest.document(), signed['manifest'])
        self.assertEqual(
            {'version': 2, 'kind': 'departure', 'migration_uuid': MIGRATION,
             'instance_uuid': INSTANCE, 'source_host': SOURCE,
             'dest_host': DEST, 'source_nonce': SOURCE_NONCE,
             'dest_nonce': DEST_NONCE, 'counter': self.manifest.counter,
             'items': [list(item) for item in self.manifest.items.items()]},
            signed['manifest'])

    def test_documents_load_and_dump_alike(self):
        for manifest in (make_manifest(counter=0),
                         make_manifest(counter=2 ** 64 - 1),
                         make_manifest(kind=manifest_module.ARRIVAL)):
            text = json.dumps({'manifest': manifest.document(),
                               'quote': json.loads(self.text)['quote']})
            loaded, _ = manifest_module.load(text)
            self.assertEqual(manifest, loaded)
            self.assertEqual(manifest.digest(), loaded.digest())

    def test_kinds_have_qualifying_data_of_their_own(self):
        departure = make_manifest()
        arrival = make_manifest(kind=manifest_module.ARRIVAL)
        self.assertNotEqual(departure.digest(), arrival.digest())
        self.assertEqual(
            purpose.qualifying_data(purpose.ARRIVAL, arrival.digest()),
            arrival.qualifying_data())
        self.assertNotEqual(
            purpose.qualifying_data(purpose.MANIFEST, arrival.digest()),
            arrival.qualifying_data())

    def test_another_tpms_ak_did_not_sign_it(self):
        stranger = self.useFixture(services.SoftwareTPMFixture())
        loaded, quote = manifest_module.load(self.text)
        error = self.assertRaises(exception.ManifestError,
                                  manifest_module.check_signature, loaded,
                                  quote, stranger.attestation_key().public,
                                  SOURCE)
        self.assertIn(NOT_SIGNED % {'host': SOURCE, 'kind': 'departure'} +
                      'signature does not verify with the enrolled AK',
                      str(error))

    def test_every_field_is_covered_by_the_signature(self):
        items = [list(item) for item in self.manifest.items.items()]
        changes = [setter('manifest', name, value) for name, value in (
            ('migration_uuid', OTHER_UUID), ('instance_uuid', OTHER_UUID),
            ('source_host', 'compute-9'), ('dest_host', 'compute-9'),
            ('source_nonce', DEST_NONCE), ('dest_nonce', SOURCE_NONCE),
            ('counter', self.manifest.counter + 1),
            ('kind', manifest_module.ARRIVAL),
            ('items', [['vtpm-state', 'ff' * 32]] + items[1:]),
            ('items', list(reversed(items))),
            ('items', items[:-1]),
            ('items', items + [['disk:vdb', '5b' * 32]]),
            ('items', []))]
        for change in changes:
            self.signature_error(edited(self.text, change), REPLAYED)

    def test_a_quote_of_another_manifest_does_not_sign_this_one(self):
        other = self.sign(block_migration=False)
        other_quote = json.loads(other)['quote']
        self.signature_error(
            edited(self.text, lambda signed: signed.update(
                quote=other_quote)), REPLAYED)

    def test_a_changed_quote(self):
        signed = json.loads(self.text)
        bank, values = next(iter(signed['quote']['pcr_values'].items()))
        index = next(iter(values))
        self.signature_error(
            edited(self.text, lambda s: s['quote']['pcr_values'][bank]
                   .update({index: 'ab' * 32})),
            'PCR values do not match the digest the TPM quoted')
        other = self.sign()
        self.signature_error(
            edited(self.text, setter('quote', 'signature',
                                     json.loads(other)['quote']['signature'])),
            'signature does not verify with the enrolled AK')

    def test_checked_for_the_host_named_by_the_caller(self):
        # The verifier names the host whose AK it checks, whatever the
        # document claims; the message says which.
        changed = edited(self.text, setter('manifest', 'source_host',
                                           'compute-9'))
        self.signature_error(changed, REPLAYED, host=SOURCE)


class TestLoadRefusals(ManifestTestCase):

    def test_no_manifest(self):
        for text in ('', None, self.text.encode('ascii')):
            self.load_error(text, 'no signed integrity manifest was sent')

    def test_oversized_text(self):
        for text in (' ' * (64 * 1024 + 1),
                     self.text + ' ' * (64 * 1024)):
            self.load_error(text, 'the integrity manifest is larger than '
                                  '65536 bytes')

    def test_deeply_nested_json(self):
        self.load_error('[' * 50000, 'the integrity manifest is malformed')

    def test_malformed_json(self):
        for text in ('not json', '{', self.text[:-1], '[]', 'null',
                     '"text"', '{}', '{"manifest": {"version": 2}}',
                     '{"manifest": [], "quote": {}}',
                     edited(self.text, remover('manifest', 'items')),
                     edited(self.text, lambda s: s.pop('quote'))):
            self.load_error(text, 'the integrity manifest is malformed')

    def test_wrong_version(self):
        for version, shown in ((1, '1'), (3, '3'), (0, '0'), ('2', "'2'"),
                               (True, 'True'), (None, 'None')):
            self.load_error(
                edited(self.text, setter('manifest', 'version', version)),
                'integrity manifest version %s is not 2' % shown)
        self.load_error(edited(self.text, remover('manifest', 'version')),
                        'integrity manifest version None is not 2')

    def test_wrong_kind(self):
        for kind in ('Departure', 'attest', '', None, 1):
            self.load_error(
                edited(self.text, setter('manifest', 'kind', kind)),
                'integrity manifest kind %r is not arrival or departure'
                % (kind,))
        self.load_error(
            edited(self.text, setter('manifest', 'kind', ['departure'])),
            'the integrity manifest is malformed')
        self.load_error(edited(self.text, remover('manifest', 'kind')),
                        'integrity manifest kind None is not')

    def test_missing_or_oversized_fields(self):
        limits = {'migration_uuid': 36, 'instance_uuid': 36,
                  'source_host': 255, 'dest_host': 255,
                  'source_nonce': 128, 'dest_nonce': 128}
        for name in FIELDS:
            message = ('manifest field %s is missing, too long or not '
                       'printable' % name)
            self.load_error(edited(self.text, remover('manifest', name)),
                            message)
            for value in ('', 'x' * (limits[name] + 1), 5, None, ['x'],
                          'compute-1\nforged log line'):
                self.load_error(
                    edited(self.text, setter('manifest', name, value)),
                    message)

    def test_counters_that_are_not_64_bit_values(self):
        for value, shown in ((True, 'True'), (False, 'False'), (-1, '-1'),
                             (2 ** 64, str(2 ** 64)), (1.0, '1.0'),
                             ('7', "'7'"), (None, 'None')):
            self.load_error(
                edited(self.text, setter('manifest', 'counter', value)),
                'manifest counter %s is not a 64-bit value' % shown)
        self.load_error(edited(self.text, remover('manifest', 'counter')),
                        'manifest counter None is not a 64-bit value')

    def test_malformed_items(self):
        for items, reason in (
                ([['vtpm-state', 'not a digest']],
                 'measurement of vtpm-state is not a SHA-256 hex digest'),
                ([['rootfs', '1f' * 32]], "not a measurement item name: "
                                          "'rootfs'"),
                ([['nvram', '1f' * 32], ['nvram', '2e' * 32]],
                 'item nvram measured twice'),
                ('vtpm-state', 'a measurement is a list of [name, digest] '
                               'pairs'),
                ([['disk:vd%d' % i, '1f' * 32] for i in range(257)],
                 'a measurement has at most 256 items')):
            self.load_error(
                edited(self.text, setter('manifest', 'items', items)),
                'the integrity manifest is malformed: ' + reason)

    def test_malformed_quotes(self):
        for change, reason in (
                (setter('quote', 'message', '*not base64*'),
                 'manifest quote is not base64'),
                (setter('quote', 'message', 'A' * 4000),
                 'manifest quote is missing or larger than 2048 bytes'),
                (setter('quote', 'signature', None),
                 'manifest signature is missing or larger than 1024 bytes'),
                (setter('quote', 'pcr_values', []),
                 'PCR values are malformed'),
                (remover('quote', 'pcr_values'), "'pcr_values'")):
            self.load_error(edited(self.text, change),
                            'the integrity manifest is malformed: ' + reason)


class TestManagerCounter(SourceManagerTestCase):

    def counter(self):
        """The counter the manager signs into a manifest now."""
        return manifest_module.load(self.sign(block_migration=False))[
            0].counter

    def test_the_counter_goes_up_by_one(self):
        start = self.counter()
        self.assertEqual(start, self.counter())
        self.assertEqual(start + 1, self.advance())
        self.assertEqual(start + 1, self.counter())
        self.assertEqual(start + 2, self.advance())
        self.assertEqual(start + 2, self.counter())

    def test_the_counter_is_advanced_only_with_an_authorization(self):
        start = self.counter()
        token = self.authorization(results.COMMIT)
        self.assertEqual(start + 1, self.local.advance_counter(token))
        for refused in (token, None,
                        self.authorization(results.MEASURE),
                        self.authorization(results.COMMIT, host=DEST)):
            error = self.assertRaises(exception.TPMError,
                                      self.local.advance_counter, refused)
            self.assertIn('the vTPM manager refused advance_counter: '
                          'compute-1: commit refused: ', str(error))
        self.assertEqual(start + 1, self.counter())

    def test_the_counter_survives_a_manager_restart(self):
        value = self.advance()
        self.source.stop()
        self.start(SOURCE, state_path=self.source.state_path)
        self.assertEqual(value, self.counter())
        self.assertEqual(value + 1, self.advance())

    def test_the_counter_survives_a_tpm_restart(self):
        value = self.advance()
        self.source.stop()
        self.tpm.tpm.stop()
        self.tpm.tpm.start()
        self.start(SOURCE, state_path=self.source.state_path)
        self.assertEqual(value, self.counter())

    def test_each_host_has_its_own_counter(self):
        source_local = self.local
        backend = file_backend.FileStateBackend(self.backend.root, DEST)
        self.backend.copy_instance(INSTANCE, backend)
        self.start(DEST, tpm=self.useFixture(
            services.SoftwareTPMFixture()), backend=backend)
        dest_local, self.local = self.local, source_local
        before = manifest_module.load(dest_local.sign_manifest(
            self.authorization(results.MEASURE, host=DEST), None, False))[
                0].counter
        self.advance()
        after = manifest_module.load(dest_local.sign_manifest(
            self.authorization(results.MEASURE, host=DEST), None, False))[
                0].counter
        self.assertEqual(before, after)

    def test_a_manifest_binds_the_counter_it_was_signed_with(self):
        text = self.sign()
        counter = manifest_module.load(text)[0].counter
        self.advance()
        # Presented with the advanced counter, the old signature fails.
        replayed = edited(text, setter('manifest', 'counter', counter + 1))
        loaded, quote = manifest_module.load(replayed)
        error = self.assertRaises(exception.ManifestError,
                                  manifest_module.check_signature, loaded,
                                  quote, self.ak_public, SOURCE)
        self.assertIn(REPLAYED, str(error))

    def test_an_unreachable_manager(self):
        self.source.stop()
        local = local_client.LocalManager(self.source.hook_socket, 0.5)
        for call, arguments in ((local.advance_counter, ()),
                                (local.sign_manifest, (None, False))):
            error = self.assertRaises(
                exception.TPMConnectionError, call,
                self.authorization(results.COMMIT), *arguments)
            self.assertIn('the vTPM manager of this host cannot be reached '
                          'at %s' % self.source.hook_socket, str(error))
