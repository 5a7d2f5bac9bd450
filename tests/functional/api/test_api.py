"""korora-api's gabbi tests (gabbits/*.yaml), each file on the fixture
of tests/fixtures/api.py: the real application, a real SQLite
database, a real verifier on a real RabbitMQ node, vTPM managers on
swtpm."""

import os

from gabbi import driver
import wsgi_intercept

from tests.fixtures import api as fixtures

wsgi_intercept.STRICT_RESPONSE_HEADERS = True
TESTS_DIR = 'gabbits'


def load_tests(loader, tests, pattern):
    test_dir = os.path.join(os.path.dirname(__file__), TESTS_DIR)
    return driver.build_tests(test_dir, loader, host=None,
                              test_loader_name=__name__,
                              intercept=fixtures.setup_app,
                              fixture_module=fixtures)
