"""Step 4 of a live migration: the integrity manifest the source's TPM
signs, and the source's monotonic counter it is bound to.

A real vTPM manager on its own swtpm quotes over the manifest's digest,
through oslo.messaging's in-process driver.
"""

import json
import os

import fixtures

from korora_nova.attestation import purpose
from korora_nova import exception
from korora_nova.hooks import manifest as manifest_module
from korora_nova.hypervisors import base as hypervisors
from korora_nova.tests import base
from korora_nova.tests import fixtures as korora_fixtures
from korora_nova.vtpm_manager import rpcapi

SOURCE = 'compute-1'
DEST = 'compute-2'
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
MIGRATION = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'
OTHER_UUID = '6a1d4e2f-8c3b-4d9e-b0f7-4c5e2d3f1a08'
SOURCE_NONCE = '5e' * 32
DEST_NONCE = 'd1' * 32
ITEMS = (('vtpm-state', '1f' * 32), ('nvram', '2e' * 32),
         ('domain-security', '3d' * 32), ('disk:vda', '4c' * 32))
FIELDS = ('migration_uuid', 'instance_uuid', 'source_host', 'dest_host',
          'source_nonce', 'dest_nonce')
NOT_SIGNED = ('the integrity manifest is not signed by %(host)s\'s '
              'attestation key: untrusted: %(host)s: ')
REPLAYED = 'nonce mismatch: stale or replayed evidence'


def make_manifest(counter=7, items=ITEMS, **fields):
    values = dict(migration_uuid=MIGRATION, instance_uuid=INSTANCE,
                  source_host=SOURCE, dest_host=DEST,
                  source_nonce=SOURCE_NONCE, dest_nonce=DEST_NONCE)
    values.update(fields)
    return manifest_module.Manifest(counter=counter,
                                    items=hypervisors.Measurement(items),
                                    **values)


def edited(text, change):
    """sign()'s text after change(signed_document) edited it."""
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
        self.useFixture(korora_fixtures.InProcessBusFixture(
            self.config.conf))
        self.flags(local_channel_key=os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'local-channel.key'))
        self.tpm = self.useFixture(korora_fixtures.SoftwareTPMFixture())
        self.source = self.useFixture(korora_fixtures.VTPMManagerFixture(
            SOURCE, self.tpm))
        self.api = rpcapi.VTPMManagerAPI()

    @property
    def ak_public(self):
        return self.source.manager.ak.public


class ManifestTestCase(SourceManagerTestCase):

    def setUp(self):
        super().setUp()
        self.manifest = make_manifest()
        self.text = manifest_module.sign(self.api, self.manifest)

    def load_error(self, text, message):
        error = self.assertRaises(manifest_module.ManifestError,
                                  manifest_module.load, text)
        self.assertIn(message, str(error))
        return error

    def signature_error(self, text, reason):
        loaded, quote = manifest_module.load(text)
        error = self.assertRaises(manifest_module.ManifestError,
                                  manifest_module.check_signature, loaded,
                                  quote, self.ak_public)
        # The message names the host the manifest claims as its source.
        self.assertIn(NOT_SIGNED % {'host': loaded.source_host},
                      str(error))
        self.assertIn(reason, str(error))
        return error


class TestSignedManifest(ManifestTestCase):

    def test_sign_load_and_check(self):
        loaded, quote = manifest_module.load(self.text)
        self.assertEqual(self.manifest, loaded)
        self.assertEqual(list(ITEMS), list(loaded.items.items()))
        verdict = manifest_module.check_signature(loaded, quote,
                                                  self.ak_public)
        self.assertTrue(verdict.evidence_valid, verdict.summary())
        self.assertEqual(purpose.qualifying_data(purpose.MANIFEST,
                                                 self.manifest.digest()),
                         verdict.attestation.extra_data)
        self.assertEqual('quote', verdict.attestation.type)
        self.assertTrue(verdict.pcr_values)

    def test_the_document_is_what_was_signed(self):
        signed = json.loads(self.text)
        self.assertEqual(self.manifest.document(), signed['manifest'])
        self.assertEqual(
            {'version': 1, 'migration_uuid': MIGRATION,
             'instance_uuid': INSTANCE, 'source_host': SOURCE,
             'dest_host': DEST, 'source_nonce': SOURCE_NONCE,
             'dest_nonce': DEST_NONCE, 'counter': 7,
             'items': [list(item) for item in ITEMS]}, signed['manifest'])

    def test_counter_extremes_are_signed_and_loaded(self):
        for counter in (0, 2 ** 64 - 1):
            manifest = make_manifest(counter=counter)
            loaded, quote = manifest_module.load(
                manifest_module.sign(self.api, manifest))
            self.assertEqual(counter, loaded.counter)
            manifest_module.check_signature(loaded, quote, self.ak_public)

    def test_another_tpms_ak_did_not_sign_it(self):
        stranger = self.useFixture(korora_fixtures.SoftwareTPMFixture())
        loaded, quote = manifest_module.load(self.text)
        error = self.assertRaises(manifest_module.ManifestError,
                                  manifest_module.check_signature, loaded,
                                  quote, stranger.attestation_key().public)
        self.assertIn(NOT_SIGNED % {'host': SOURCE} + 'signature does not '
                      'verify with the enrolled AK', str(error))

    def test_every_field_is_covered_by_the_signature(self):
        changes = [setter('manifest', name, value) for name, value in (
            ('migration_uuid', OTHER_UUID), ('instance_uuid', OTHER_UUID),
            ('source_host', 'compute-9'), ('dest_host', 'compute-9'),
            ('source_nonce', DEST_NONCE), ('dest_nonce', SOURCE_NONCE),
            ('counter', 6), ('counter', 8),
            ('items', [['vtpm-state', 'ff' * 32]] + [
                list(item) for item in ITEMS[1:]]),
            ('items', [list(item) for item in reversed(ITEMS)]),
            ('items', [list(item) for item in ITEMS[:-1]]),
            ('items', [list(item) for item in ITEMS] + [
                ['disk:vdb', '5b' * 32]]),
            ('items', []))]
        for change in changes:
            self.signature_error(edited(self.text, change), REPLAYED)

    def test_a_quote_of_another_manifest_does_not_sign_this_one(self):
        other = manifest_module.sign(self.api, make_manifest(counter=8))
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
        other = manifest_module.sign(self.api, self.manifest)
        self.signature_error(
            edited(self.text, setter('quote', 'signature',
                                     json.loads(other)['quote']['signature'])),
            'signature does not verify with the enrolled AK')


class TestLoadRefusals(ManifestTestCase):

    def test_no_manifest(self):
        for text in ('', None, self.text.encode('ascii')):
            self.load_error(text, 'the source signed no integrity manifest')

    def test_oversized_text(self):
        for text in (' ' * (64 * 1024 + 1),
                     self.text + ' ' * (64 * 1024)):
            self.load_error(text, 'the integrity manifest is larger than '
                                  '65536 bytes')

    def test_deeply_nested_json(self):
        self.load_error('[' * 50000, 'the integrity manifest is malformed')

    def test_malformed_json(self):
        for text in ('not json', '{', self.text[:-1], '[]', 'null',
                     '"text"', '{}', '{"manifest": {"version": 1}}',
                     '{"manifest": [], "quote": {}}',
                     edited(self.text, remover('manifest', 'items')),
                     edited(self.text, lambda s: s.pop('quote'))):
            self.load_error(text, 'the integrity manifest is malformed')

    def test_wrong_version(self):
        for version, shown in ((2, '2'), (0, '0'), ('1', "'1'"),
                               (None, 'None')):
            self.load_error(
                edited(self.text, setter('manifest', 'version', version)),
                'integrity manifest version %s is not 1' % shown)
        self.load_error(edited(self.text, remover('manifest', 'version')),
                        'integrity manifest version None is not 1')

    def test_missing_or_oversized_fields(self):
        limits = {'migration_uuid': 36, 'instance_uuid': 36,
                  'source_host': 255, 'dest_host': 255,
                  'source_nonce': 128, 'dest_nonce': 128}
        for name in FIELDS:
            message = 'manifest field %s is missing or too long' % name
            self.load_error(edited(self.text, remover('manifest', name)),
                            message)
            for value in ('', 'x' * (limits[name] + 1), 5, None, ['x']):
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

    def test_the_counter_goes_up_by_one(self):
        start = self.api.read_counter(SOURCE)
        self.assertEqual(start, self.api.read_counter(SOURCE))
        self.assertEqual(start + 1, self.api.advance_counter(SOURCE))
        self.assertEqual(start + 1, self.api.read_counter(SOURCE))
        self.assertEqual(start + 2, self.api.advance_counter(SOURCE))
        self.assertEqual(start + 2, self.api.read_counter(SOURCE))

    def test_the_counter_survives_a_manager_restart(self):
        value = self.api.advance_counter(SOURCE)
        self.source.stop()
        self.useFixture(korora_fixtures.VTPMManagerFixture(
            SOURCE, self.tpm, state_path=self.source.state_path))
        self.assertEqual(value, self.api.read_counter(SOURCE))
        self.assertEqual(value + 1, self.api.advance_counter(SOURCE))

    def test_the_counter_survives_a_tpm_restart(self):
        value = self.api.advance_counter(SOURCE)
        self.source.stop()
        self.tpm.tpm.stop()
        self.tpm.tpm.start()
        self.useFixture(korora_fixtures.VTPMManagerFixture(
            SOURCE, self.tpm, state_path=self.source.state_path))
        self.assertEqual(value, self.api.read_counter(SOURCE))

    def test_each_host_has_its_own_counter(self):
        self.useFixture(korora_fixtures.VTPMManagerFixture(DEST))
        before = self.api.read_counter(DEST)
        self.api.advance_counter(SOURCE)
        self.assertEqual(before, self.api.read_counter(DEST))

    def test_a_manifest_binds_the_counter_it_was_signed_with(self):
        counter = self.api.read_counter(SOURCE)
        manifest = make_manifest(counter=counter)
        text = manifest_module.sign(self.api, manifest)
        self.api.advance_counter(SOURCE)
        loaded, quote = manifest_module.load(text)
        self.assertEqual(counter, loaded.counter)
        # Presented with the advanced counter, the old signature fails.
        replayed = edited(text, setter('manifest', 'counter', counter + 1))
        loaded, quote = manifest_module.load(replayed)
        error = self.assertRaises(manifest_module.ManifestError,
                                  manifest_module.check_signature, loaded,
                                  quote, self.ak_public)
        self.assertIn(REPLAYED, str(error))

    def test_an_unreachable_manager(self):
        self.flags(migration_step_timeout=0.5)
        self.source.stop()
        for call in (self.api.read_counter, self.api.advance_counter):
            error = self.assertRaises(exception.TPMConnectionError, call,
                                      SOURCE)
            self.assertEqual('compute-1: the vTPM manager did not answer '
                             'within 0.5 s', str(error))
