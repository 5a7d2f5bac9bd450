"""korora-nova's configuration: every option lives in the [korora] group.

Options are registered here, once, on oslo.config's global CONF, so that
any module can ``from korora_nova import conf; conf.CONF.korora.tcti``.
"""

from oslo_config import cfg

from korora_nova.conf import korora

CONF = cfg.CONF

korora.register_opts(CONF)


def register_host_opt(conf):
    """[DEFAULT] host, for korora's own processes.

    Inside nova-compute and nova-scheduler Nova registers it; our daemons
    and korora-manage register the same option so that a shared nova.conf
    names the host alike everywhere.
    """
    if 'host' not in conf:
        conf.register_opt(korora.host_opt)
