"""Measurements, compare() and the bounded, symlink-refusing reads."""

import hashlib
import json
import os

import fixtures

from korora_nova import exception
from korora_nova.hypervisors import base
from tests import base as test_base

A = 'a' * 64
B = 'b' * 64
C = 'c' * 64


class TestMeasurement(test_base.TestCase):

    def test_keeps_order_and_compares_equal(self):
        measurement = base.Measurement([('vtpm-state', A), ('nvram', B),
                                        ('domain-security', C)])
        self.assertEqual(['vtpm-state', 'nvram', 'domain-security'],
                         list(measurement))
        self.assertEqual(B, measurement['nvram'])
        self.assertEqual({'vtpm-state': A, 'nvram': B,
                          'domain-security': C}, dict(measurement))

    def test_round_trips_through_json(self):
        measurement = base.Measurement([('vtpm-state', A),
                                        ('domain-security', C),
                                        ('disk:vda', B)])
        again = base.Measurement.from_primitive(
            json.loads(json.dumps(measurement.to_primitive())))
        self.assertEqual(list(measurement.items()), list(again.items()))

    def test_refuses_bad_names_and_digests(self):
        for items in ([('vtpm', A)], [('disk:', A)], [('disk:../x', A)],
                      [('vtpm-state', 'A' * 64)], [('nvram', A[:63])],
                      [('nvram', None)], [('nvram', A), ('nvram', A)]):
            self.assertRaises(exception.InstanceStateError, base.Measurement,
                              items)

    def test_from_primitive_refuses_what_is_not_pairs(self):
        for value in ('x', 3, None, [['vtpm-state']], [('a', 'b', 'c')],
                      [[('disk:d%d' % i), A] for i in range(300)]):
            self.assertRaises(exception.InstanceStateError,
                              base.Measurement.from_primitive, value)

    def test_errors_are_korora_errors(self):
        self.assertTrue(issubclass(exception.InstanceStateError,
                                   exception.KororaError))
        self.assertTrue(issubclass(exception.MigrationRefused,
                                   exception.InstanceStateError))


class TestCompare(test_base.TestCase):

    def test_equal_measurements_differ_nowhere(self):
        one = base.Measurement([('vtpm-state', A), ('domain-security', C)])
        self.assertEqual([], base.compare(one, base.Measurement(one)))

    def test_names_the_differing_items(self):
        expected = base.Measurement([('vtpm-state', A), ('nvram', B),
                                     ('domain-security', C)])
        actual = base.Measurement([('vtpm-state', A), ('nvram', C),
                                   ('domain-security', A)])
        self.assertEqual(['nvram', 'domain-security'],
                         base.compare(expected, actual))

    def test_an_item_missing_on_either_side_differs(self):
        expected = base.Measurement([('vtpm-state', A), ('nvram', B),
                                     ('domain-security', C)])
        actual = base.Measurement([('vtpm-state', A),
                                   ('domain-security', C),
                                   ('disk:vda', B)])
        self.assertEqual(['nvram', 'disk:vda'],
                         base.compare(expected, actual))

    def test_plain_mappings_work_too(self):
        self.assertEqual(['nvram'], base.compare({'nvram': A}, {}))


class TestUUID(test_base.TestCase):

    def test_canonical_form(self):
        self.assertEqual('11111111-2222-3333-4444-555555555555',
                         base.validate_uuid(
                             '11111111-2222-3333-4444-555555555555'.upper()))

    def test_refuses_what_could_be_a_path(self):
        for value in ('../../etc', '11111111-2222-3333-4444-55555555555/',
                      '', None, 42, '{11111111-2222-3333-4444-555555555555}',
                      'urn:uuid:11111111-2222-3333-4444-555555555555',
                      '11111111-2222-3333-4444-555555555555/..'):
            self.assertRaises(exception.InstanceStateError, base.validate_uuid,
                              value)


class TestBoundedReads(test_base.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(self.root, 'inst'))
        self.file = os.path.join(self.root, 'inst', 'state')
        with open(self.file, 'wb') as handle:
            handle.write(b'x' * 5000)

    def test_reads_and_hashes_a_regular_file(self):
        fd = base.open_below(self.root, ['inst', 'state'], 'state')
        self.assertEqual(b'x' * 5000, base.read_fd(fd, 5000, self.file,
                                                   'state'))
        fd = base.open_path(self.file, 'state')
        self.assertEqual(hashlib.sha256(b'x' * 5000).hexdigest(),
                         base.hash_fd(fd, 5000, self.file, 'state'))

    def test_refuses_an_oversized_file_without_reading_it(self):
        with open(self.file, 'r+b') as handle:
            handle.truncate(1 << 40)     # sparse: 1 TiB
        fd = base.open_below(self.root, ['inst', 'state'], 'state', 'nvram')
        error = self.assertRaises(exception.InstanceStateError, base.read_fd,
                                  fd, 4096, self.file, 'state', 'nvram')
        self.assertIn('more than the 4096 allowed', str(error))
        self.assertEqual('nvram', error.item)
        fd = base.open_path(self.file, 'state')
        self.assertRaises(exception.InstanceStateError, base.hash_fd, fd, 4096,
                          self.file, 'state')

    def test_refuses_a_symlink_in_any_component_below_root(self):
        os.rename(self.file, self.file + '.real')
        os.symlink(self.file + '.real', self.file)
        error = self.assertRaises(
            exception.InstanceStateError, base.open_below,
            self.root, ['inst', 'state'], 'state')
        self.assertIn('symbolic link', str(error))
        self.assertRaises(exception.InstanceStateError, base.open_path,
                          self.file, 'state')
        os.rename(os.path.join(self.root, 'inst'),
                  os.path.join(self.root, 'real'))
        os.symlink(os.path.join(self.root, 'real'),
                   os.path.join(self.root, 'inst'))
        self.assertRaises(exception.InstanceStateError, base.open_below,
                          self.root, ['inst', 'state.real'], 'state')

    def test_refuses_a_fifo_without_blocking(self):
        fifo = os.path.join(self.root, 'inst', 'fifo')
        os.mkfifo(fifo)
        error = self.assertRaises(
            exception.InstanceStateError, base.open_below,
            self.root, ['inst', 'fifo'], 'state')
        self.assertIn('not a regular file', str(error))

    def test_missing_file_says_so(self):
        error = self.assertRaises(
            exception.InstanceStateError, base.open_below,
            self.root, ['inst', 'nothing'], 'state',
            'vtpm-state')
        self.assertIn('missing', str(error))
        self.assertEqual('vtpm-state', error.item)
        self.assertRaises(exception.InstanceStateError, base.open_path,
                          'relative/path', 'state')
