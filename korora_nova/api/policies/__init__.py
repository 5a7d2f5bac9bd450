"""korora-api's policy in code (oslo.policy), one module per resource."""

import itertools

from korora_nova.api.policies import audit
from korora_nova.api.policies import base
from korora_nova.api.policies import hosts
from korora_nova.api.policies import instances
from korora_nova.api.policies import migrations
from korora_nova.api.policies import policies


def list_rules():
    """Every default, for the enforcer and oslopolicy-sample-generator."""
    return list(itertools.chain(
        base.list_rules(), hosts.list_rules(), policies.list_rules(),
        migrations.list_rules(), audit.list_rules(),
        instances.list_rules()))
