"""Enrolling a host through its vTPM manager (korora-manage, and the
verifier for korora-api: verifier.admin)."""

from oslo_log import log as logging

from korora_nova.attestation import ek_certificate
from korora_nova.attestation import enrollment
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova import exception

CONF = conf.CONF
LOG = logging.getLogger(__name__)

MAX_HOST_NAME = 255     # hosts.name, and Nova's own limit


def enroll(manager_api, host, policy_name=None, trust_on_first_use=False,
           requester=None):
    """Check the host's EK and AK, activate its credential, store it
    (requester: who asked through korora-api, for the audit log)."""
    if not host or len(host) > MAX_HOST_NAME or host != host.strip():
        raise exception.EnrollmentError(
            'a host name is 1 to %d characters, without surrounding '
            'spaces: %r' % (MAX_HOST_NAME, host))
    anchors = []
    if not trust_on_first_use:
        if not CONF.korora.ek_ca_bundle:
            raise exception.ConfigurationError(
                '[korora] ek_ca_bundle is not set: name the EK CA bundle, '
                'or enroll with --trust-on-first-use')
        anchors = ek_certificate.load_bundle(CONF.korora.ek_ca_bundle)
    endorsement, ak_public = manager_api.get_identity(host)
    challenge = enrollment.challenge(host, endorsement, ak_public, anchors,
                                     trust_on_first_use)
    try:
        answer = manager_api.activate_credential(
            host, challenge.credential_blob, challenge.encrypted_secret)
    except exception.KororaError as error:
        raise exception.EnrollmentError(
            '%s: credential activation failed: %s' % (host, error))
    identity = enrollment.finish(host, endorsement, ak_public, challenge,
                                 answer, trust_on_first_use)
    stored = db.host_create(identity,
                            policy_name or CONF.korora.default_policy,
                            requester=requester)
    LOG.info('%s enrolled: EK %s (certificate sha256 %s), AK %s%s', host,
             endorsement.ek_type, identity.ek_certificate_sha256,
             identity.ak_name,
             ' (trust on first use)' if trust_on_first_use else '')
    return stored
