"""Run one of Nova's functional test cases as a program.

The cloud is a testtools TestCase (Nova's ``_IntegratedTestBase``): its
fixtures start the services and every temporary folder and process, and
remove them again when the case ends, whatever happened. A program runs
one test method of it and tells its reader the outcome in one line; the
services' logs, the Python warnings and anything printed on stderr (an
eventlet hub printing a greenthread's traceback, say) go to a log file.

Nothing here imports Nova: ``log_to_file`` must run before Nova's
functional package is imported, whose monkey patching logs a warning.
"""

import contextlib
import logging
import sys
import traceback
import unittest

FORMAT = '%(asctime)s %(levelname)s [%(name)s] %(message)s'

#: The console, as it was when this module was imported: oslotest may
#: capture sys.stdout while a case runs (OS_STDOUT_CAPTURE).
CONSOLE = sys.stdout


def say(text=''):
    """Print a line on the console, at once (what its encoding cannot
    show, such as the macron of Kororā on a Latin-1 terminal, replaced)."""
    line = text + '\n'
    try:
        CONSOLE.write(line)
    except UnicodeEncodeError:
        encoding = CONSOLE.encoding or 'ascii'
        CONSOLE.write(line.encode(encoding, 'replace').decode(encoding))
    CONSOLE.flush()


def log_to_file(path):
    """Send every log record at INFO and above, and Python's warnings, to
    path (appended), and nothing to the console."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    return handler


def _append(path, title, text):
    with open(path, 'a') as stream:
        stream.write('\n----- %s -----\n' % title)
        stream.write(text)
        if not text.endswith('\n'):
            stream.write('\n')


def one_line(error):
    """A one-line reason for an exception."""
    if isinstance(error, AssertionError):
        text = str(error)
    else:
        text = '%s: %s' % (type(error).__name__, error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def run_case(case, log_path):
    """Run case (a TestCase made with the name of one test method).

    Returns None when it passed, else a one-line reason: the first
    exception raised in its set-up, test method or clean-up. The logs the
    case captured and every traceback are appended to log_path; stderr
    goes there too while the case runs. KeyboardInterrupt is raised again
    once the case has cleaned up.
    """
    raised = []
    case.addOnException(lambda exc_info: raised.append(exc_info))
    result = unittest.TestResult()
    with open(log_path, 'a') as errors, contextlib.redirect_stderr(errors):
        try:
            case.run(result)
        finally:
            errors.flush()
            # Nova's StandardLogging keeps them in a FakeLogger, which
            # hands them to the case as a detail.
            for name, content in sorted(case.getDetails().items()):
                if name.startswith('pythonlogging'):
                    _append(log_path, 'logs of the services while %s ran'
                            % case.id(), content.as_text())
    for number, exc_info in enumerate(raised):
        _append(log_path, 'exception %d' % (number + 1),
                ''.join(traceback.format_exception(*exc_info)))
    if result.wasSuccessful() and not raised:
        return None
    if raised:
        return one_line(raised[0][1])
    problems = result.errors + result.failures + [
        (test, 'unexpected success') for test in result.unexpectedSuccesses]
    for _test, text in problems:
        _append(log_path, 'failure', text)
    return 'the case did not pass (see the log)'
