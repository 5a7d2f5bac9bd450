"""The verifier's signed answers to an operator's reads through
korora-api.

An operator records a policy from the PCR values a known-good host
quotes now, and keeps an audit anchor's ``seq:hash`` outside the
database. Both answers pass through the message bus and korora-api,
either of which an attacker may control, and the operator then signs
(or trusts) what they were shown. So the verifier signs each answer
(kinds ``quoted-values`` and ``audit-anchor`` of
korora_nova.attestation.results), bound to a nonce the operator's own
client drew, and the client believes only what such a token says,
checked against the verifier public keys it pins. Nothing outside the
token is read.
"""

import os

from korora_nova.attestation import pcr_values as pcr_module
from korora_nova.attestation import results
from korora_nova import exception

PCR_VALUES = 'korora.pcr-values'
QUOTED_AT = 'korora.quoted-at'
ANCHOR = 'korora.anchor'
# The anchor's host is the token's subject, not a field of its own.
ANCHOR_FIELDS = ('seq', 'entry_hash', 'created_at')
# The client's nonce: 16 to 64 random bytes (base64url on the wire).
MIN_NONCE = 16
MAX_NONCE = 64
NONCE_SIZE = 32


def new_nonce():
    """A fresh nonce for one read, as bytes."""
    return os.urandom(NONCE_SIZE)


def nonce_from_claim(claim):
    """The bytes of a client's nonce (base64url); UsageError if it is
    not 16 to 64 bytes of base64url."""
    try:
        nonce = results.nonce_bytes(claim)
    except exception.SignedResultError:
        nonce = b''
    if not MIN_NONCE <= len(nonce) <= MAX_NONCE:
        raise exception.UsageError(
            'the nonce must be %d to %d bytes in base64url'
            % (MIN_NONCE, MAX_NONCE))
    return nonce


def sign_quote(signer, host, values, quoted_at, nonce, lifetime):
    """The token saying host's TPM quoted values (pcr_values JSON form)
    at quoted_at, for the read that drew nonce."""
    return signer.sign(results.QUOTED_VALUES, host, lifetime, {
        'eat_nonce': results.nonce_claim(nonce), PCR_VALUES: values,
        QUOTED_AT: quoted_at})


def verified_quote(keys, token, host, nonce):
    """{host, pcr_values, quoted_at} as the verifier signed them for
    this read (keys: results.TrustedKeys); SignedResultError if the
    token is not the verifier's, not about host or not for nonce."""
    claims = keys.verify(token, results.QUOTED_VALUES, subject=host,
                         nonce=nonce)
    try:
        pcr_module.from_json(claims.get(PCR_VALUES))
    except exception.EvidenceError as error:
        raise exception.SignedResultError(
            'the signed quote carries malformed PCR values: %s' % error)
    quoted_at = claims.get(QUOTED_AT)
    if not isinstance(quoted_at, str) or len(quoted_at) > 64:
        raise exception.SignedResultError('the signed quote has no time')
    return {'host': host, 'pcr_values': claims[PCR_VALUES],
            'quoted_at': quoted_at}


def sign_anchor(signer, anchor, nonce, lifetime):
    """The token saying the audit log was anchored as anchor says
    ({seq, entry_hash, host, created_at}), for the read that drew
    nonce."""
    return signer.sign(results.AUDIT_ANCHOR, anchor['host'], lifetime, {
        'eat_nonce': results.nonce_claim(nonce),
        ANCHOR: {name: anchor[name] for name in ANCHOR_FIELDS}})


def verified_anchor(keys, token, host, nonce):
    """The anchor {seq, entry_hash, host, created_at} as the verifier
    signed it for this read; SignedResultError otherwise."""
    claims = keys.verify(token, results.AUDIT_ANCHOR, subject=host,
                         nonce=nonce)
    anchor = claims.get(ANCHOR)
    if not isinstance(anchor, dict) or not (
            isinstance(anchor.get('seq'), int)
            and isinstance(anchor.get('entry_hash'), str)
            and len(anchor['entry_hash']) == 64
            and isinstance(anchor.get('created_at'), str)):
        raise exception.SignedResultError(
            'the signed anchor is malformed')
    return dict({name: anchor[name] for name in ANCHOR_FIELDS}, host=host)
