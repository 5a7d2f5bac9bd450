"""The keys and anchors the targets judge with, read from material/."""

import functools

from cryptography.hazmat.primitives import serialization
from cryptography import x509

from korora_nova.attestation import appraisal
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy
from korora_nova.attestation import results
from fuzz import common

AK_FILES = ('ak-ecdsa.pub', 'ak-rsassa.pub', 'ak-rsapss.pub')


@functools.lru_cache(maxsize=None)
def ak_keys():
    """The swtpm AKs (cryptography keys), ECDSA, RSASSA, RSA-PSS."""
    return [appraisal.load_public_key(common.material(name))
            for name in AK_FILES]


@functools.lru_cache(maxsize=None)
def anchors():
    return x509.load_pem_x509_certificates(common.material('ek-ca.pem'))


@functools.lru_cache(maxsize=None)
def verifier_signer():
    """A verifier signing key of the fuzz tree's own (never deployed)."""
    return results.SigningKey(serialization.load_pem_private_key(
        common.material('verifier-key.pem'), password=None))


@functools.lru_cache(maxsize=None)
def trusted():
    return results.TrustedKeys.of(verifier_signer())


@functools.lru_cache(maxsize=None)
def policy_key():
    return serialization.load_pem_private_key(
        common.material('policy-key.pem'), password=None)


@functools.lru_cache(maxsize=None)
def policy_keys():
    public = policy_key().public_key()
    return {policy.key_id(public): public}


@functools.lru_cache(maxsize=None)
def seed_values():
    """The PCR values of the seed quotes."""
    return pcr_values.from_json(common.facts()['pcr_values'])


@functools.lru_cache(maxsize=None)
def seed_policy():
    return policy.from_values('compute', 1, seed_values())


def selection():
    return [(bank, int(index)) for bank, index in common.facts()['selection']]
