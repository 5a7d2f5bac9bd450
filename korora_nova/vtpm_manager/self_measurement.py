"""The vTPM manager measures itself: its code and effective configuration.

The measurement is extended once per boot of the TPM (its reset count),
so restarting the manager with the same code and configuration leaves the
PCR as it was, while any change of either changes the PCR: a quote then
proves which vTPM manager runs, as configured.
"""

import hashlib
import json
import os

from oslo_log import log as logging

import korora_nova
from korora_nova.attestation import evidence
from korora_nova.tpm import quote

LOG = logging.getLogger(__name__)

MEASURED_SUFFIXES = ('.py',)


def code_digest():
    """SHA-256 over korora_nova's Python files, in a stable order."""
    root = os.path.dirname(os.path.abspath(korora_nova.__file__))
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders
                               if d not in ('tests', '__pycache__'))
        for name in sorted(files):
            if not name.endswith(MEASURED_SUFFIXES):
                continue
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b'\0')
            with open(path, 'rb') as stream:
                digest.update(hashlib.sha256(stream.read()).digest())
    return digest.hexdigest()


def config_digest(conf):
    """SHA-256 of the effective [korora] options (what changes behaviour).
    """
    options = {name: conf.korora[name] for name in sorted(conf.korora)
               if not name.startswith('_')}
    text = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def measurement(conf):
    return ('korora-vtpm-manager code=%s config=%s'
            % (code_digest(), config_digest(conf))).encode()


def measure_once_per_boot(connection, attestation_key, conf, state_file):
    """Extend the measurement unless this boot already has it.

    Returns True if the PCR was extended now.
    """
    data = measurement(conf)
    nonce = os.urandom(16)
    made = quote.quote(connection, attestation_key,
                       [('sha256', conf.korora.self_measurement_pcr)], nonce)
    reset_count = evidence.parse_attestation(
        made.message).clock_info.reset_count
    record = '%d %s' % (reset_count, hashlib.sha256(data).hexdigest())
    try:
        with open(state_file) as stream:
            if stream.read().strip() == record:
                LOG.info('vTPM manager already measured into PCR %d in '
                         'this boot', conf.korora.self_measurement_pcr)
                return False
    except OSError:
        pass
    quote.extend_pcr(connection, 'sha256', conf.korora.self_measurement_pcr,
                     data)
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    with open(state_file, 'w') as stream:
        stream.write(record + '\n')
    LOG.info('vTPM manager measured into PCR %d: %s',
             conf.korora.self_measurement_pcr, data.decode())
    return True
