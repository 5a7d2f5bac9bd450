"""korora-nova's configuration: every option lives in the [korora] group.

Options are registered here, once, on oslo.config's global CONF, so that
any module can ``from korora_nova import conf; conf.CONF.korora.tcti``.
"""

from oslo_config import cfg

from korora_nova.conf import korora

CONF = cfg.CONF

korora.register_opts(CONF)
