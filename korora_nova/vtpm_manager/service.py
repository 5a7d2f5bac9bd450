"""korora-vtpm-manager as an oslo.service Service."""

from oslo_log import log as logging
from oslo_service import service

from korora_nova import rpc
from korora_nova.vtpm_manager import hook_server
from korora_nova.vtpm_manager import manager as manager_module
from korora_nova.vtpm_manager import self_measurement

LOG = logging.getLogger(__name__)


def preflight(conf):
    """Check the TPM and the options before serving; raises KororaError.
    """
    # Xen: the vtpmmgr image must be readable, its domain running.
    self_measurement.vtpmmgr_statement(conf)
    hook_server.preflight(conf)
    check = manager_module.VTPMManager(conf)
    try:
        check.ak.public      # opens the TPM, creates the AK on first run
    finally:
        check.connection.close()


def launch(conf):
    return service.launch(conf, VTPMManagerService(conf), workers=1,
                          restart_method='mutate')


class VTPMManagerService(service.Service):

    def __init__(self, conf):
        super().__init__()
        self.conf = conf
        self.manager = None
        self.server = None
        self.hook_server = None

    def start(self):
        super().start()
        self.manager = manager_module.VTPMManager(self.conf)
        self.manager.start()
        self.server = rpc.get_server(
            self.conf.korora.manager_topic, self.manager.host,
            [manager_module.BusEndpoint(self.manager)])
        self.server.start()
        if self.conf.korora.libvirt_hook_socket:
            self.hook_server = hook_server.HookServer(
                self.conf, self.manager.host, manager=self.manager)
            self.hook_server.start()
        LOG.info('korora-vtpm-manager of %s serving topic %s with the TPM '
                 'at %s', self.conf.host, self.conf.korora.manager_topic,
                 self.conf.korora.tcti)

    def stop(self, graceful=True):
        if self.hook_server is not None:
            self.hook_server.stop()
            self.hook_server = None
        if self.server is not None:
            self.server.stop()
            self.server.wait()
        if self.manager is not None:
            self.manager.stop()
        super().stop(graceful)
