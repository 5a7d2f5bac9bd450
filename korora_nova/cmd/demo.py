"""korora-demo: secure live migration of a vTPM server, end to end.

A small cloud of Nova's own services runs in this process (API,
conductor, scheduler with TrustedVTPMFilter, three compute hosts with
Kororā's live-migration hooks), each compute host with its own software
TPM and vTPM manager, enrolled with the verifier and trusted under a
reference policy. A vTPM server boots and live-migrates to a trusted
host (completed, COMMITTED); a host whose PCR 10 changed is refused
when Horizon's call names it, and the server stays where it is; a
transfer whose vTPM state is altered in flight is quarantined on the
destination (ERROR, paused). The timeline of each migration follows, and
the audit log is anchored by a TPM and verified intact.

The demo checks every outcome: exit status 0 when all were as expected,
1 with a one-line reason when one was not, 130 when interrupted. Nova's
and oslo's logs go to a file in the work folder, which also keeps a copy
of the verifier database for ``korora-manage audit verify``.
"""

import argparse
import logging
import os
import sys
import tempfile
import time

# Nothing of Nova's or oslo's may be imported here: the demo's package
# imports Nova's functional harness, which monkey-patches eventlet, once
# the logs go to their file (see korora_nova.demo).
from korora_nova.demo import runner


def _arguments(argv):
    parser = argparse.ArgumentParser(
        prog='korora-demo', description=__doc__.splitlines()[0])
    parser.add_argument('--workdir',
                        help='Folder for the log and the copy of the '
                             'verifier database (default: a new folder '
                             'korora-demo-* in the temporary folder, kept '
                             'afterwards).')
    return parser.parse_args(argv)


def main(argv=None):
    args = _arguments(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix='korora-demo-')
    os.makedirs(workdir, exist_ok=True)
    workdir = os.path.abspath(workdir)
    log_path = os.path.join(workdir, 'demo.log')
    runner.log_to_file(log_path)
    started = time.monotonic()
    say = runner.say
    say('Kororā demo: secure live migration of a vTPM server')
    say('   work folder: %s' % workdir)
    say('   log of Nova\'s and Kororā\'s services: %s' % log_path)
    try:
        from korora_nova.demo import story
        reason = story.run(workdir, log_path)
    except KeyboardInterrupt:
        print('\nkorora-demo: interrupted', file=sys.stderr)
        return 130
    except Exception as error:      # an import, before any case ran
        logging.getLogger(__name__).exception('korora-demo')
        reason = runner.one_line(error)
    say()
    if reason is not None:
        print('korora-demo: FAILED: %s (details: %s)' % (reason, log_path),
              file=sys.stderr)
        return 1
    say('Demo passed in %.0f s: the server moved to a trusted host and the '
        'move was' % (time.monotonic() - started))
    say('committed; the changed host was refused; the tampered transfer was '
        'quarantined;')
    say('the audit log is intact.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
