"""Step 1 of a live migration: the request the destination's vTPM
manager signs, without which the verifier opens no record (and so
certifies no key of the destination).

A real vTPM manager on its own swtpm signs the request when nova-compute
asks over the host's UNIX socket; its quote is checked against the
manager's AK under the request purpose.
"""

import json
import time

from korora_nova.attestation import appraisal
from korora_nova.attestation import purpose
from korora_nova import exception
from korora_nova.migration import request as request_module
from korora_nova.migration import signed
from tests import base
from korora_nova.demo import services
from korora_nova.vtpm_manager import local_client

SOURCE = 'compute-1'
DEST = 'compute-2'
INSTANCE = '0b9d7a5e-4f7c-4a8e-9f33-5d2c1b6e8a70'
OTHER_INSTANCE = '1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d'
LIFETIME = 60
REFUSED = 'the vTPM manager refused sign_request: compute-2: '


def edited(text, name, value):
    """The signed text with the document's field name set to value
    (removed when value is REMOVE)."""
    document = json.loads(text)
    if value is REMOVE:
        del document['request'][name]
    else:
        document['request'][name] = value
    return json.dumps(document)


REMOVE = object()


class RequestTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(self.config.conf))
        services.verifier_keys(self)
        self.dest = self.useFixture(services.VTPMManagerFixture(DEST))
        self.local = local_client.LocalManager(self.dest.hook_socket, 30)
        self.text = self.local.sign_request(INSTANCE, SOURCE)

    def appraise(self, request, quote):
        return appraisal.appraise_quote(
            quote, appraisal.load_public_key(self.dest.manager.ak.public),
            request.qualifying_data(), None, None, host=DEST)

    def load_error(self, text, message):
        error = self.assertRaises(exception.RequestError,
                                  request_module.load, text)
        self.assertIn(message, str(error))


class TestSignRequest(RequestTestCase):

    def test_the_manager_signs_a_request_for_its_own_host(self):
        request, quote = request_module.load(self.text)
        self.assertEqual((INSTANCE, SOURCE, DEST),
                         (request.instance_uuid, request.source_host,
                          request.dest_host))
        self.assertLessEqual(abs(time.time() - request.requested_at), 5)
        self.assertEqual(request_module.NONCE_SIZE,
                         len(bytes.fromhex(request.nonce)))
        verdict = self.appraise(request, quote)
        self.assertTrue(verdict.evidence_valid, verdict.summary())
        self.assertEqual(
            purpose.qualifying_data(purpose.REQUEST,
                                    signed.digest(request.document())),
            verdict.attestation.extra_data)

    def test_every_request_is_new(self):
        first, _ = request_module.load(self.text)
        second, _ = request_module.load(
            self.local.sign_request(INSTANCE, SOURCE))
        self.assertNotEqual(first.nonce, second.nonce)
        self.assertNotEqual(first.migration_uuid(), second.migration_uuid())
        # The record a request opens is its nonce's, whoever asks.
        self.assertEqual(first.migration_uuid(),
                         request_module.load(self.text)[0].migration_uuid())

    def test_an_altered_request_does_not_verify(self):
        for name, value in (('source_host', 'compute-3'),
                            ('dest_host', 'compute-3'),
                            ('instance_uuid', OTHER_INSTANCE),
                            ('requested_at', int(time.time()) + 1),
                            ('nonce', 'ab' * 32)):
            request, quote = request_module.load(
                edited(self.text, name, value))
            verdict = self.appraise(request, quote)
            self.assertFalse(verdict.evidence_valid, name)
            self.assertIn('nonce mismatch', verdict.summary())

    def test_the_manager_refuses_a_request_it_cannot_make(self):
        for instance, source, reason in (
                (INSTANCE, DEST, 'an instance cannot migrate to its own '
                                 'host'),
                (None, SOURCE, 'the request names no usable instance'),
                ('x' * 37, SOURCE, 'the request names no usable instance'),
                (INSTANCE, '', 'the request names no usable source host'),
                (INSTANCE, 'h' * 256, 'the request names no usable source '
                                      'host'),
                (INSTANCE, ['compute-1'], 'the request names no usable '
                                          'source host')):
            error = self.assertRaises(exception.TPMError,
                                      self.local.sign_request, instance,
                                      source)
            self.assertIn(REFUSED + reason, str(error))


class TestLoadRefusals(RequestTestCase):

    def test_no_request(self):
        for text in ('', None, self.text.encode('ascii')):
            self.load_error(text, 'no signed migration request was sent')

    def test_oversized_text(self):
        self.load_error(self.text + ' ' * (16 * 1024),
                        'the migration request is larger than 16384 bytes')

    def test_malformed_json(self):
        for text in ('not json', '[' * 10000, self.text[:-1], '[]', '{}',
                     '{"request": [], "quote": {}}',
                     json.dumps({'request': json.loads(self.text)[
                         'request']})):
            self.load_error(text, 'the migration request is malformed')

    def test_wrong_version(self):
        for version, shown in ((2, '2'), ('1', "'1'"), (True, 'True'),
                               (REMOVE, 'None')):
            self.load_error(edited(self.text, 'version', version),
                            'migration request version %s is not 1' % shown)

    def test_missing_or_oversized_fields(self):
        for name, limit in (('instance_uuid', 36), ('source_host', 255),
                            ('dest_host', 255), ('nonce', 64)):
            for value in (REMOVE, '', 'x' * (limit + 1), 7, None,
                          'compute-2\nforged log line'):
                self.load_error(edited(self.text, name, value),
                                'migration request field %s is missing, '
                                'too long or not printable' % name)

    def test_instance_is_a_uuid(self):
        self.load_error(edited(self.text, 'instance_uuid', 'x' * 36),
                        'migration request field instance_uuid is not a '
                        'UUID')

    def test_nonce_is_32_bytes_of_hex(self):
        for nonce in ('ab' * 31, 'zz' * 32, 'abc'):
            self.load_error(edited(self.text, 'nonce', nonce),
                            'migration request nonce is not 32 bytes of '
                            'hex')

    def test_time_is_whole_seconds(self):
        for value in ('1700000000', 1.5, True, -1, 2 ** 63, None, REMOVE):
            self.load_error(edited(self.text, 'requested_at', value),
                            'migration request time')


class TestCheck(RequestTestCase):

    def setUp(self):
        super().setUp()
        self.request, _ = request_module.load(self.text)

    def check(self, **changed):
        asked = dict(instance_uuid=INSTANCE, source_host=SOURCE,
                     dest_host=DEST, lifetime=LIFETIME,
                     now=self.request.requested_at)
        asked.update(changed)
        return request_module.check(self.request, **asked)

    def test_the_request_for_this_migration_within_its_lifetime(self):
        for offset in (-LIFETIME, 0, LIFETIME):
            self.check(now=self.request.requested_at + offset)

    def test_another_migration_is_refused(self):
        for changed in ({'instance_uuid': OTHER_INSTANCE},
                        {'source_host': 'compute-3'},
                        {'dest_host': 'compute-3'}):
            error = self.assertRaises(exception.RequestError,
                                      self.check, **changed)
            self.assertIn('the signed request is for instance %s from %s to '
                          '%s, not' % (INSTANCE, SOURCE, DEST), str(error))

    def test_a_stale_or_future_request_is_refused(self):
        for offset in (LIFETIME + 1, -LIFETIME - 1, 3600):
            error = self.assertRaises(
                exception.RequestError, self.check,
                now=self.request.requested_at + offset)
            self.assertIn('more than 60 s ([korora] result_lifetime): stale '
                          'or the clocks differ', str(error))
