"""korora_nova.exception: every error there, each with its msg_fmt."""

import inspect
import re

import testtools

from korora_nova import exception

KEYWORD = re.compile(r'%\((\w+)\)s')


def korora_errors():
    return [value for _name, value in sorted(vars(exception).items())
            if inspect.isclass(value) and
            issubclass(value, exception.KororaError)]


class TestExceptions(testtools.TestCase):

    def test_every_class_has_its_own_msg_fmt(self):
        missing = [error.__name__ for error in korora_errors()
                   if 'msg_fmt' not in vars(error)]
        self.assertEqual([], missing)

    def test_every_msg_fmt_names_its_keywords(self):
        for error in korora_errors():
            self.assertTrue(KEYWORD.search(error.msg_fmt), error.__name__)

    def test_raised_with_keywords_the_msg_fmt_is_used(self):
        for error in korora_errors():
            if error.__init__ is not exception.KororaError.__init__:
                continue
            keywords = {name: '<%s>' % name
                        for name in KEYWORD.findall(error.msg_fmt)}
            message = str(error(**keywords))
            self.assertNotIn('%(', message, error.__name__)
            for value in keywords.values():
                self.assertIn(value, message, error.__name__)

    def test_raised_with_a_message_the_message_is_kept(self):
        for error in korora_errors():
            if error.__init__ is exception.KororaError.__init__:
                self.assertEqual('as it is', str(error('as it is')))

    def test_keywords_of_the_errors_with_their_own_init(self):
        self.assertEqual(
            'the instance state cannot be measured: gone',
            str(exception.InstanceStateError(reason='gone')))
        error = exception.DomainXMLError(reason='a DOCTYPE')
        self.assertEqual('domain XML refused: a DOCTYPE', str(error))
        self.assertEqual('domain-security', error.item)
        self.assertIsInstance(error, exception.InstanceStateError)
        self.assertEqual('migration m: a -> b is not allowed (why)',
                         str(exception.IllegalTransition('m', 'a', 'b',
                                                         'why')))
        self.assertEqual(
            'migration m: a -> b is not allowed (it is c now: another '
            'service moved it first)',
            str(exception.ConcurrentTransition('m', 'a', 'b', 'c')))

    def test_inheritance_is_kept(self):
        self.assertTrue(issubclass(exception.HookSocketError,
                                   exception.ConfigurationError))
        self.assertTrue(issubclass(exception.MigrationRefused,
                                   exception.InstanceStateError))
        self.assertTrue(issubclass(exception.ConcurrentTransition,
                                   exception.IllegalTransition))
