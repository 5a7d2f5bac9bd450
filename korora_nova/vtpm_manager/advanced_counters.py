"""Which migrations' commits advanced the monotonic counter, on disk.

The manager keeps them in its state folder so that a commit retried
after a failure, or after a restart, is answered with the value of the
first advance instead of advancing the counter twice. The file is
small and bounded (the newest entries are kept); an unreadable one is
logged and ignored: the worst a lost entry can cause is one extra
advance, which only makes older manifests stale sooner.
"""

import json
import os

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

MAX_FILE = 256 * 1024


def load(path):
    """{migration uuid: counter value} from path; empty if there is none
    or it cannot be used."""
    try:
        with open(path, 'rb') as stream:
            data = stream.read(MAX_FILE + 1)
    except FileNotFoundError:
        return {}
    except OSError as error:
        LOG.warning('cannot read %s: %s; starting without it', path,
                    error.strerror)
        return {}
    try:
        if len(data) > MAX_FILE:
            raise ValueError('larger than %d bytes' % MAX_FILE)
        found = json.loads(data)
        if not isinstance(found, list):
            raise ValueError('not a list')
        return {uuid: value for uuid, value in found
                if isinstance(uuid, str) and len(uuid) <= 36
                and type(value) is int and 0 <= value < 2 ** 64}
    except (ValueError, TypeError, RecursionError) as error:
        LOG.warning('ignoring %s: %s', path, error)
        return {}


def save(path, advanced, limit):
    """Write the newest limit entries of advanced (insertion order)
    atomically; returns them, as the dict to keep."""
    newest = list(advanced.items())[-limit:]
    temporary = path + '.tmp'
    with open(temporary, 'w') as stream:
        json.dump(newest, stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)
    return dict(newest)
