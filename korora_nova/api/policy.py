"""The policy enforcer of korora-api ([oslo_policy] options)."""

import threading

from oslo_policy import policy
import webob.exc

from korora_nova.api import policies
from korora_nova.api import util
from korora_nova import conf

CONF = conf.CONF
_lock = threading.Lock()
_enforcer = {}


def get_enforcer():
    """The process's enforcer (oslo.policy.enforcer entry point too)."""
    with _lock:
        if 'enforcer' not in _enforcer:
            enforcer = policy.Enforcer(CONF)
            enforcer.register_defaults(policies.list_rules())
            _enforcer['enforcer'] = enforcer
        return _enforcer['enforcer']


def reset():
    """Forget the enforcer (tests, a new configuration)."""
    with _lock:
        _enforcer.clear()


def authorize(req, rule):
    """403 unless the request's Keystone context passes rule."""
    context = req.environ['korora.context']
    target = {'project_id': context.project_id}
    try:
        get_enforcer().authorize(rule, target, context, do_raise=True)
    except (policy.PolicyNotAuthorized, policy.InvalidScope):
        raise util.error(webob.exc.HTTPForbidden,
                         'policy does not allow %s to be performed' % rule)
    return context
