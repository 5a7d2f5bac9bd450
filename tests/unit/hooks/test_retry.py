"""hooks.retry: a step that could not run is tried again, at most
[korora] step_retries times; any other error passes at once; and none
of it puts a traceback in the log an operator reads."""

import fixtures

from korora_nova import exception
from korora_nova.hooks import retry
from tests import base


class Attempts:
    """attempt() for retry.retried: raises the errors given, in order,
    then returns 'done'."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return 'done'


class TestRetried(base.TestCase):

    def setUp(self):
        super().setUp()
        self.flags(step_retries=2, step_retry_interval=0.0)
        self.log = self.useFixture(fixtures.FakeLogger(format='%(message)s'))

    def test_a_step_that_could_not_run_is_tried_again(self):
        attempts = Attempts(exception.StepNotRun(reason='broker away'),
                            exception.TPMConnectionError('restarting'))
        self.assertEqual('done', retry.retried('migration_show', attempts))
        self.assertEqual(3, attempts.calls)
        self.assertEqual(
            ['Korora: migration_show could not run (try 1 of 3): the step '
             'could not run: broker away',
             'Korora: migration_show could not run (try 2 of 3): '
             'restarting'], self.log.output.splitlines())

    def test_the_last_error_ends_the_tries(self):
        attempts = Attempts(*[exception.StepNotRun(reason='try %d' % n)
                              for n in range(1, 5)])
        error = self.assertRaises(exception.StepNotRun, retry.retried,
                                  'migration_show', attempts)
        self.assertIn('try 3', str(error))
        self.assertEqual(3, attempts.calls)
        self.assertIn('migration_show could not run after 3 tries',
                      self.log.output)
        self.assertNotIn('Traceback', self.log.output)

    def test_other_errors_pass_at_once_and_log_nothing(self):
        attempts = Attempts(exception.ConfigurationError('pinned below'))
        error = self.assertRaises(exception.ConfigurationError,
                                  retry.retried, 'migration_show', attempts)
        self.assertEqual('pinned below', str(error))
        self.assertEqual(1, attempts.calls)
        self.assertEqual('', self.log.output)
