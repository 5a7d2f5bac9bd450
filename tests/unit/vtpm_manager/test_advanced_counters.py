"""The vTPM manager's record of which commits advanced its counter: a
bad file is ignored (at worst one extra advance), a good one is kept
bounded."""

import json
import os

import fixtures

from korora_nova.vtpm_manager import advanced_counters
from tests import base

UUID = '5f0c3d1e-7b2a-4c8d-a9e6-3b4f1d2c0e97'


class TestAdvancedCounters(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'advanced-counters.json')

    def write(self, data):
        with open(self.path, 'wb') as stream:
            stream.write(data)

    def test_round_trip_keeps_the_newest(self):
        advanced = {'m-%d' % number: number for number in range(10)}
        kept = advanced_counters.save(self.path, advanced, 4)
        expected = {'m-%d' % number: number for number in range(6, 10)}
        self.assertEqual(expected, kept)
        self.assertEqual(expected, advanced_counters.load(self.path))

    def test_no_file_is_no_advance(self):
        self.assertEqual({}, advanced_counters.load(self.path))

    def test_a_bad_file_is_ignored(self):
        for data in (b'not json', b'{}', b'[' * 100000, b' ' * (300 * 1024),
                     json.dumps([[UUID, -1], [UUID, 2 ** 64], [UUID, '7'],
                                 [UUID, True], ['x' * 37, 1]]).encode()):
            self.write(data)
            self.assertEqual({}, advanced_counters.load(self.path), data[:20])

    def test_good_entries_survive_beside_bad_ones(self):
        self.write(json.dumps([[UUID, 7], [UUID + 'x', 8]]).encode())
        self.assertEqual({UUID: 7}, advanced_counters.load(self.path))
