"""The two halves as korora-manage runs them on this host, with its
configuration: [DEFAULT] host, [korora] libvirt_uri (the domains and
what the vTPM manager measures), [korora_direct_migration]."""

from korora_nova.direct_migration import domains as domains_module
from korora_nova.direct_migration import receiver
from korora_nova.direct_migration import sender
from korora_nova.vtpm_manager import manager


def migrate(conf, domain_name, dest, live=False):
    """sender.migrate from this host; returns its Outcome."""
    domains_module.quiet_libvirt_errors()
    domains = domains_module.Domains(conf.korora.libvirt_uri)
    try:
        return sender.migrate(conf.host, conf, domains,
                              manager.state_backend_from_conf(conf,
                                                              conf.host),
                              domain_name, dest, live)
    finally:
        domains.close()


def receive(conf, reader, writer):
    """receiver.serve on this host until the source ends the pipe."""
    domains_module.quiet_libvirt_errors()
    domains = domains_module.Domains(conf.korora.libvirt_uri)
    try:
        receiver.serve(conf.host, conf, domains,
                       manager.state_backend_from_conf(conf, conf.host),
                       reader, writer)
    finally:
        domains.close()
