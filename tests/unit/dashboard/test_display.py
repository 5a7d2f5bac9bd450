"""How the panels name policy versions, list policy choices and show
the audit log's head."""

from korora_nova.dashboard import display
from tests import base


class TestPolicyVersionIds(base.TestCase):

    def test_round_trip_with_colons_and_slashes_in_the_name(self):
        for name in ('compute', 'lab:rack-2', 'a/b', 'x:1'):
            object_id = display.policy_version_id(
                {'name': name, 'version': 12})
            self.assertEqual((name, 12),
                             display.split_policy_version_id(object_id))

    def test_not_an_id(self):
        for text in ('compute', 'compute:', ':1', 'compute:v1',
                     'compute:-1', ''):
            self.assertRaises(ValueError, display.split_policy_version_id,
                              text)


class TestPolicyChoices(base.TestCase):

    def test_each_name_once_in_the_api_s_order(self):
        versions = [{'name': 'b', 'version': 1}, {'name': 'a', 'version': 1},
                    {'name': 'b', 'version': 2}]
        self.assertEqual([('b', 'b'), ('a', 'a')],
                         display.policy_choices(versions))

    def test_none(self):
        self.assertEqual([], display.policy_choices([]))


class TestAuditHead(base.TestCase):

    def test_seq_and_hash_as_verify_takes_them(self):
        self.assertEqual('42:ab12', display.audit_head(
            {'seq': 42, 'entry_hash': 'ab12', 'anchored': False}))

    def test_an_empty_log(self):
        self.assertEqual('-', display.audit_head(None))
