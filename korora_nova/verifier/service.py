"""korora-verifier as an oslo.service Service (one per worker process)."""

import os

from oslo_log import log as logging
from oslo_service import service

from korora_nova.attestation import results
from korora_nova import rpc
from korora_nova.verifier import attestation
from korora_nova.verifier import manager as manager_module
from korora_nova.verifier import migrations
from korora_nova.verifier import placement
from korora_nova.rpcapi import vtpm_manager as manager_rpcapi

LOG = logging.getLogger(__name__)


def preflight(conf):
    """Check the database before serving; raises KororaError."""
    from korora_nova.db import api as db
    from korora_nova.db import migration
    from korora_nova import exception

    results.SigningKey.load(conf.korora.verifier_signing_key)
    current = migration.db_version()
    head = migration.head_version()
    if current != head:
        raise exception.DatabaseError(
            'the database is at schema revision %s, not %s: run '
            '"korora-manage db sync"' % (current or 'none', head))
    # The workers fork after this: connections opened here must not be
    # shared by several processes.
    db.dispose()


def launch(conf):
    return service.launch(conf, VerifierService(conf),
                          workers=conf.korora.verifier_workers,
                          restart_method='mutate')


def make_verifier(conf, signer=None):
    """The verifier endpoint, signing with signer (default: [korora]
    verifier_signing_key)."""
    signer = signer or results.SigningKey.load(
        conf.korora.verifier_signing_key)
    manager_api = manager_rpcapi.VTPMManagerAPI(signer)
    notifier = rpc.get_notifier('korora-verifier.%s' % conf.host)
    traits = (placement.PlacementTraits(conf)
              if conf.korora.update_placement_traits else None)
    attestor = attestation.Attestor(manager_api, notifier, traits)
    return manager_module.Verifier(
        conf, attestor,
        migrations.MigrationSteps(conf, attestor, manager_api, signer))


class VerifierService(service.Service):

    def __init__(self, conf):
        super().__init__()
        self.conf = conf
        self.verifier = None
        self.server = None

    def start(self):
        super().start()
        self.verifier = make_verifier(self.conf)
        # Workers share the topic; each has a server name of its own.
        self.server = rpc.get_server(
            self.conf.korora.verifier_topic,
            '%s.%d' % (self.conf.host, os.getpid()), [self.verifier])
        self.server.start()
        self.verifier.start()
        LOG.info('korora-verifier worker %d serving topic %s',
                 os.getpid(), self.conf.korora.verifier_topic)

    def stop(self, graceful=True):
        if self.verifier is not None:
            self.verifier.stop()
        if self.server is not None:
            self.server.stop()
            self.server.wait()
        super().stop(graceful)
