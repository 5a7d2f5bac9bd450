"""Base test case: oslotest's, with korora's configuration reset."""

from oslo_config import fixture as config_fixture
from oslotest import base

from korora_nova import conf
from korora_nova import rpc


class TestCase(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.config = self.useFixture(config_fixture.Config(conf.CONF))
        # rpc keeps one transport per process: a test's transport (a
        # fake bus, or a broker that is gone) must never serve the next.
        rpc.cleanup()
        self.addCleanup(rpc.cleanup)

    def flags(self, **options):
        """Set [korora] options for this test."""
        self.config.config(group='korora', **options)
