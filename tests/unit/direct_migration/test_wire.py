"""The pipe between the halves of a direct migration: bounded, strict,
and only the project's errors."""

import io

import testtools

from korora_nova.direct_migration import peer
from korora_nova.direct_migration import wire
from korora_nova import exception


class TestWire(testtools.TestCase):

    def test_a_message_goes_through_as_one_line(self):
        stream = io.BytesIO()
        wire.send(stream, {'step': 'request', 'instance_uuid': 'u'})
        self.assertEqual(1, stream.getvalue().count(b'\n'))
        stream.seek(0)
        self.assertEqual({'step': 'request', 'instance_uuid': 'u'},
                         wire.receive(stream))
        self.assertIsNone(wire.receive(stream))

    def test_bad_lines_are_refused(self):
        for line, message in (
                (b'x' * (wire.MAX_LINE + 10) + b'\n', 'longer than'),
                (b'{"step": "request"', 'cut short'),
                (b'not json\n', 'not JSON'),
                (b'[1, 2]\n', 'not a JSON object'),
                (b'[' * 100000 + b'\n', 'longer than')):
            error = self.assertRaises(exception.PeerError, wire.receive,
                                      io.BytesIO(line))
            self.assertIn(message, str(error))

    def test_a_message_too_long_is_not_sent(self):
        stream = io.BytesIO()
        self.assertRaises(exception.PeerError, wire.send, stream,
                          {'envelope': 'x' * wire.MAX_LINE})
        self.assertEqual(b'', stream.getvalue())

    def test_answers(self):
        self.assertEqual({'state': 'VERIFIED'}, wire.result_of(
            wire.answer({'state': 'VERIFIED'}), 'verify_arrival'))
        error = self.assertRaises(
            exception.StepRefused, wire.result_of,
            wire.error_answer(wire.REFUSED, 'xen-b: PCR sha256:10'),
            'request')
        self.assertIn('xen-b: PCR sha256:10', str(error))
        error = self.assertRaises(
            exception.PeerError, wire.result_of,
            wire.error_answer(wire.FAILED, 'libvirt down'), 'open_transfer')
        self.assertIn('open_transfer failed there: libvirt down', str(error))
        for bad in (None, {}, {'error': 7}, {'nothing': 1}):
            self.assertRaises(exception.PeerError, wire.result_of, bad,
                              'request')


class TestHostNames(testtools.TestCase):

    def test_names_that_could_be_options_or_words_are_refused(self):
        for name in ('-oProxyCommand=x', 'a b', 'xen-b;reboot', '', None,
                     'x' * 300, 'a/b'):
            self.assertRaises(exception.UsageError, peer.checked_host, name)
        self.assertEqual('xen-b.example.org',
                         peer.checked_host('xen-b.example.org'))

    def test_templates_fill_in_the_host_only(self):
        self.assertEqual('xen+tls://xen-b/system', peer.filled(
            'xen+tls://{host}/system', 'xen-b', 'libvirt_uri'))
        error = self.assertRaises(exception.ConfigurationError, peer.filled,
                                  'ssh {user}@{host}', 'xen-b',
                                  'peer_command')
        self.assertIn('[korora_direct_migration] peer_command', str(error))
