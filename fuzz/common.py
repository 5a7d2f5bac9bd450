"""What every fuzz target shares: the key material the seeds were made
with, the input splitter and the rule for what counts as a crash.

A target calls a product entry point with the fuzzer's bytes. The
errors the entry point documents (korora_nova.exception.KororaError,
and the libvirt hook's protocol.Refused) are expected answers and are
checked to be one line; anything else escapes and is a crash, in
atheris as in the corpus replay of the unit tests.
"""

import functools
import json
import os

from korora_nova import exception

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, 'corpus')
REGRESSIONS = os.path.join(HERE, 'regressions')
# What seeds.py wrote besides the corpus: public keys, the EK CA, the
# nonces the seed evidence was made over.
MATERIAL = os.path.join(HERE, 'material')


class BadAnswer(AssertionError):
    """An expected error whose message is not one line."""


def material_path(name):
    return os.path.join(MATERIAL, name)


@functools.lru_cache(maxsize=None)
def material(name):
    with open(material_path(name), 'rb') as stream:
        return stream.read()


@functools.lru_cache(maxsize=None)
def facts():
    """The JSON facts of the seed evidence (nonces, hosts, uuids)."""
    return json.loads(material('facts.json'))


def parts(data, count):
    """data cut into count byte strings: each but the last is prefixed
    by its 16-bit big-endian length (cut short where data ends)."""
    found = []
    for _ in range(count - 1):
        size = int.from_bytes(data[:2], 'big')
        found.append(data[2:2 + size])
        data = data[2 + size:]
    found.append(data)
    return found


def join(*chunks):
    """The inverse of parts(), for seeds."""
    out = b''
    for chunk in chunks[:-1]:
        out += len(chunk).to_bytes(2, 'big') + chunk
    return out + chunks[-1]


def text(data):
    """Bytes as the str a JSON message or a file read as text gives."""
    return data.decode('utf-8', 'replace')


def json_value(data):
    """The JSON value in data, or None when data is no JSON (what the
    message bus hands on is decoded JSON; undecodable bytes never reach
    the product)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def check_message(error):
    message = str(error)
    if not message or '\n' in message or '\r' in message:
        raise BadAnswer('%s raised a message that is not one line: %r'
                        % (type(error).__name__, message[:200]))


def expected(*errors):
    """Run call(), letting errors (and KororaError) through as answers
    once their message is one line; anything else propagates."""
    errors = (exception.KororaError,) + errors

    def run(call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except errors as error:
            check_message(error)
            return None
    return run


answer = expected()


def target(name):
    """The module fuzz.targets.<name>."""
    import importlib
    return importlib.import_module('fuzz.targets.' + name)


def corpus_files(name, folders=(CORPUS, REGRESSIONS)):
    """The files of the corpus and regression folders of target name."""
    found = []
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            found.extend(os.path.join(path, file_name)
                         for file_name in sorted(os.listdir(path))
                         if not file_name.startswith('.'))
    return found
