"""The vTPM manager measures itself: its code and effective configuration.

The measurement is extended once per boot of the TPM (its reset count),
so restarting the manager with the same code and configuration leaves the
PCR as it was, while any change of either changes the PCR: a quote then
proves which vTPM manager runs, as configured.

On a Xen host ([korora] xen_vtpmmgr_image set) the measurement also
states which vTPM manager domain (vtpmmgr) the host runs: the SHA-256 of
its kernel image and, with [korora] xen_vtpmmgr_libvirt_uri, whether the
running vtpmmgr domain boots that image ("running=image") or another
("running=mismatch"). vtpmmgr holds the platform TPM and the keys of
Xen's stub-domain vTPMs, and lives on after this manager starts, so the
statement is made again before every quote and any change is extended
into the PCR first: the TPM keeps it until it restarts, and the policy
judges it. When the statement cannot be made (image unreadable, libvirt
unreachable, no vtpmmgr domain), the manager neither starts nor quotes.
"""

import hashlib
import json
import os

from oslo_log import log as logging

import korora_nova
from korora_nova.attestation import evidence
from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.hypervisors import libvirt_backend
from korora_nova.tpm import quote

LOG = logging.getLogger(__name__)

MEASURED_SUFFIXES = ('.py',)
# Bounds the read; a vtpmmgr-stubdom image is a small mini-os kernel.
MAX_VTPMMGR_IMAGE_BYTES = 64 * 1024 * 1024
IMAGE_OPTION = '[korora] xen_vtpmmgr_image'


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


def vtpmmgr_image_digest(path):
    """SHA-256 of the vtpmmgr kernel image: a regular file, not a
    symlink, read within MAX_VTPMMGR_IMAGE_BYTES."""
    what = 'the Xen vTPM manager image (%s)' % IMAGE_OPTION
    try:
        fd = base.open_path(path, what)
        return base.hash_fd(fd, MAX_VTPMMGR_IMAGE_BYTES, path, what)
    except exception.InstanceStateError as error:
        raise exception.XenVTPMMgrError(str(error))


def _running_vtpmmgr(uri, image):
    """'image' if every vtpmmgr domain libvirt lists boots image,
    'mismatch' if one boots another kernel."""
    try:
        domains = libvirt_backend.xen_vtpmmgr_domains(uri, image)
    except exception.InstanceStateError as error:
        raise exception.XenVTPMMgrError(
            'cannot check the running Xen vTPM manager '
            'domain: %s' % error)
    if not domains:
        raise exception.XenVTPMMgrError(
            'libvirt at %s lists no running Xen vTPM manager domain '
            '(vtpmmgr): start it before korora-vtpm-manager, or unset '
            '[korora] xen_vtpmmgr_libvirt_uri if xl starts it (libvirt '
            'does not list domains that xl started)' % uri)
    wrong = ['%s (kernel %s)' % (facts.name, facts.kernel)
             for facts in domains
             if os.path.normpath(facts.kernel or '/') !=
             os.path.normpath(image)]
    if wrong:
        LOG.error('Xen vTPM manager domain %s does not boot %s %s: this '
                  'is measured as a mismatch, so the host fails its '
                  'policy until the TPM restarts. Run vtpmmgr from the '
                  'approved image, then reboot the host.',
                  ', '.join(wrong), IMAGE_OPTION, image)
        return 'mismatch'
    return 'image'


def vtpmmgr_statement(conf):
    """What the host runs as Xen's vTPM manager, as measured text, or
    None on hosts without [korora] xen_vtpmmgr_image (KVM).

    Raises XenVTPMMgrError when it cannot be told.
    """
    image = conf.korora.xen_vtpmmgr_image
    uri = conf.korora.xen_vtpmmgr_libvirt_uri
    if not image:
        if uri:
            raise exception.XenVTPMMgrError(
                '[korora] xen_vtpmmgr_libvirt_uri is set but %s is not: '
                'name the vtpmmgr kernel image to check' % IMAGE_OPTION)
        return None
    statement = 'xen-vtpmmgr=%s' % vtpmmgr_image_digest(image)
    if uri:
        statement += ' running=%s' % _running_vtpmmgr(uri, image)
    return statement


def measurement(conf, vtpmmgr=None):
    text = ('korora-vtpm-manager code=%s config=%s'
            % (code_digest(), config_digest(conf)))
    if vtpmmgr:
        text += ' ' + vtpmmgr
    return text.encode()


def measure_vtpmmgr_change(connection, conf, statement):
    """Extend a changed vtpmmgr statement before a quote reports it."""
    data = ('korora-vtpm-manager %s' % statement).encode()
    quote.extend_pcr(connection, 'sha256', conf.korora.self_measurement_pcr,
                     data)
    LOG.warning('Xen vTPM manager changed since it was last measured; '
                'measured into PCR %d: %s',
                conf.korora.self_measurement_pcr, data.decode())


def measure_once_per_boot(connection, attestation_key, conf, state_file,
                          vtpmmgr=None):
    """Extend the measurement unless this boot already has it.

    vtpmmgr is vtpmmgr_statement(conf), made by the caller. Returns True
    if the PCR was extended now.
    """
    data = measurement(conf, vtpmmgr)
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
