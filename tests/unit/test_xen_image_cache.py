"""The Xen bed's image cache keeps only the current recipe's tree and
image (tests.fixtures.xen_image.prune): each is over a gigabyte."""

import fcntl
import os

import fixtures
import testtools

from tests.fixtures import xen_image

CURRENT = ('tree-' + '1' * 16, 'image-' + '2' * 16)
OLD = ('tree-' + 'a' * 16, 'image-' + 'b' * 16)


class TestPrune(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        for name in CURRENT + OLD:
            os.makedirs(os.path.join(self.root, name, 'rootfs'))
            open(os.path.join(self.root, name + '.lock'), 'w').close()
        os.makedirs(os.path.join(self.root, 'not-ours'))

    def test_old_recipes_go_and_the_current_one_stays(self):
        removed = xen_image.prune(self.root, CURRENT)
        self.assertEqual(sorted(OLD), removed)
        self.assertEqual(sorted(CURRENT + tuple(n + '.lock' for n in CURRENT)
                                + ('not-ours',)),
                         sorted(os.listdir(self.root)))

    def test_one_another_process_holds_is_left(self):
        # flock: another open file description, as another process has.
        with open(os.path.join(self.root, OLD[1] + '.lock')) as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            removed = xen_image.prune(self.root, CURRENT)
        self.assertEqual([OLD[0]], removed)
        self.assertTrue(os.path.isdir(os.path.join(self.root, OLD[1])))

    def test_a_missing_cache_is_nothing_to_prune(self):
        self.assertEqual([], xen_image.prune(
            os.path.join(self.root, 'absent'), CURRENT))
