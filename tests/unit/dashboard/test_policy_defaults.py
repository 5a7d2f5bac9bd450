"""Horizon's copy of korora-api's policy (DEFAULT_POLICY_FILES) is the
API's policy in code, and decides as the API does for the credentials
Horizon checks with: an admin sees the write actions, a reader none."""

import os

from oslo_config import cfg
from oslo_policy import opts
from oslo_policy import policy
import yaml

from korora_nova.api import policies
from korora_nova import dashboard
from tests import base

DEFAULTS = os.path.join(os.path.dirname(dashboard.__file__), 'conf',
                        'default_policies', 'korora.yaml')
WRITES = ('korora:hosts:enroll', 'korora:hosts:delete',
          'korora:hosts:attest', 'korora:hosts:set_policy',
          'korora:policies:import', 'korora:policies:activate',
          'korora:policies:deactivate', 'korora:hosts:quote',
          'korora:audit:anchor', 'korora:admin')
READS = ('korora:hosts:list', 'korora:policies:list', 'korora:audit:verify')


def _load():
    with open(DEFAULTS) as stream:
        return yaml.safe_load(stream)


def _horizon_enforcer():
    """As openstack_auth.policy builds one: no override file, the
    defaults registered from the YAML."""
    conf = cfg.ConfigOpts()
    conf([])
    opts.set_defaults(conf)
    conf.set_default('policy_file', 'korora_policy.yaml', 'oslo_policy')
    conf.set_default('policy_dirs', [], 'oslo_policy')
    enforcer = policy.Enforcer(conf)
    enforcer.register_defaults([policy.RuleDefault(
        rule['name'], rule['check_str'], description=rule['description'],
        scope_types=rule['scope_types']) for rule in _load()])
    enforcer.load_rules()
    return enforcer


def _credentials(*roles):
    """What openstack_auth.policy checks with: a project-scoped user."""
    return {'user_id': 'u', 'project_id': 'p', 'tenant_id': 'p',
            'roles': list(roles), 'is_admin': False}


class TestPolicyDefaults(base.TestCase):

    def test_the_file_is_the_policy_in_code(self):
        self.assertEqual(
            [(rule.name, rule.check_str, list(rule.scope_types or []))
             for rule in policies.list_rules()],
            [(rule['name'], rule['check_str'], rule['scope_types'] or [])
             for rule in _load()])

    def test_an_admin_may_read_and_write(self):
        enforcer = _horizon_enforcer()
        for rule in READS + WRITES:
            self.assertTrue(enforcer.enforce(
                rule, {}, _credentials('admin', 'member', 'reader')), rule)

    def test_a_reader_or_member_may_do_nothing(self):
        enforcer = _horizon_enforcer()
        for roles in (('reader',), ('member', 'reader')):
            for rule in READS + WRITES:
                self.assertFalse(enforcer.enforce(
                    rule, {}, _credentials(*roles)), (rule, roles))
