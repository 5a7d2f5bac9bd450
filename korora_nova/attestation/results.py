"""Signed attestation results: the only verifier answers anyone believes.

Whatever crosses the message bus can be forged or replayed by any of
its clients. So the verifier signs what it tells relying parties (the
live-migration hooks, the vTPM managers) as a JWS (ES256, compact form)
and each relying party checks it with the verifier's public keys, pinned
in its configuration ([korora] verifier_public_keys; several at once,
for key rotation). Every token is short-lived, names its subject host,
and is bound to the relying party's nonce or to one migration.

The claims follow the IETF RATS "EAT Attestation Result" draft
(draft-ietf-rats-ear): ``eat_profile``, ``iat``, ``exp``,
``ear.verifier-id``, ``eat_nonce`` and per-host ``submods`` with
``ear.status``, ``ear.trustworthiness-vector`` (AR4SI) and
``ear.appraisal-policy-id``. What is Kororā's own is under ``korora.``:
the kind of token (an attestation result, a challenge to a vTPM
manager, an authorization of one per-migration call), the migration it
is about, the reasons for a refusal.

One JOSE library does the signing and checking (PyJWT, from OpenStack's
constraints); this module only fixes what a korora token must contain.
"""

import base64
import time
import uuid

import jwt

from korora_nova.attestation import es256_keys
from korora_nova import exception

EAR_PROFILE = 'tag:github.com,2023:veraison/ear'
ISSUER = 'korora-verifier'
# Where a service pins the verifier's public keys.
VERIFIER_KEYS = '[korora] verifier_public_keys'
ALGORITHM = 'ES256'
# A token is a few hundred bytes; nothing larger is parsed.
MAX_TOKEN = 16 * 1024
# Clocks of hosts differ a little.
LEEWAY = 5

# korora.kind
RESULT = 'attestation-result'
CHALLENGE = 'challenge'
AUTHORIZATION = 'authorization'
# Signed by korora-api, not by the verifier: an operator's write the
# verifier is asked to carry out (korora_nova.attestation.admin_request).
ADMIN_REQUEST = 'admin-request'
# The verifier's answers to an operator's reads through korora-api (a
# host's verified PCR values, an audit anchor), bound to the operator's
# client nonce (korora_nova.attestation.operator_answers).
QUOTED_VALUES = 'quoted-values'
AUDIT_ANCHOR = 'audit-anchor'
KINDS = (RESULT, CHALLENGE, AUTHORIZATION, ADMIN_REQUEST, QUOTED_VALUES,
         AUDIT_ANCHOR)
# In a refusal: the step could not run (a manager unreachable, the
# database busy) and may be asked again; nothing was decided.
RETRY_CLAIM = 'korora.retry'

# korora.action: the vTPM manager calls an authorization may be for, and
# the role the authorized host plays in the migration.
CERTIFY_KEY = 'certify-key'
TRANSFER = 'transfer'
MEASURE = 'measure'
VERIFY = 'verify'
COMMIT = 'commit'
ROLES = {CERTIFY_KEY: 'destination', TRANSFER: 'destination',
         MEASURE: 'source', VERIFY: 'destination', COMMIT: 'source'}
# korora.purpose of a challenge that is not for a quote.
ENROLL = 'enroll'

# ear.status (draft-ietf-rats-ear, the AR4SI tiers)
AFFIRMING = 'affirming'
WARNING = 'warning'
CONTRAINDICATED = 'contraindicated'
NONE = 'none'

# AR4SI trustworthiness claims: what a verdict says of a host.
_VECTOR_TRUSTED = {'instance-identity': 2, 'hardware': 2, 'executables': 2}
_VECTOR_UNRECOGNIZED = {'instance-identity': 2, 'hardware': 2,
                        'executables': 96}
_VECTOR_UNPROVEN = {'instance-identity': 96}


def nonce_claim(nonce):
    """eat_nonce: the nonce as unpadded base64url, as the draft writes it.
    """
    return base64.urlsafe_b64encode(nonce).rstrip(b'=').decode('ascii')


def nonce_bytes(claim):
    """The nonce an eat_nonce claim carries; SignedResultError if none."""
    if not isinstance(claim, str) or not 0 < len(claim) <= 128:
        raise exception.SignedResultError('the token carries no nonce')
    try:
        return base64.urlsafe_b64decode(claim + '=' * (-len(claim) % 4))
    except (ValueError, TypeError):
        raise exception.SignedResultError('the token\'s nonce is not '
                                          'base64url')


def generate_signing_key(path):
    """Write a new EC P-256 private key to path (mode 0600, refusing to
    overwrite a file) and return it as a SigningKey."""
    return SigningKey(es256_keys.generate(path))


def write_public_key(signing_key, path):
    """Write the public half of signing_key to path (PEM), for pinning."""
    with open(path, 'wb') as handle:
        handle.write(signing_key.public_pem())


class SigningKey:
    """The verifier's signing key ([korora] verifier_signing_key), or
    korora-api's ([korora_api] signing_key, issuer korora-api)."""

    def __init__(self, private_key, issuer=ISSUER):
        self._key = private_key
        self.issuer = issuer
        self.kid = es256_keys.key_id(private_key.public_key())

    @classmethod
    def load(cls, path, issuer=ISSUER, what='verifier signing key'):
        return cls(es256_keys.load_private_key(path, what), issuer)

    def public_pem(self):
        return es256_keys.public_pem(self._key.public_key())

    def sign(self, kind, subject, lifetime, claims=None):
        """A token of kind about subject (a host name), valid lifetime
        seconds from now, with claims added."""
        if kind not in KINDS:
            raise ValueError('unknown token kind %r' % (kind,))
        now = int(time.time())
        body = {'eat_profile': EAR_PROFILE, 'iss': self.issuer, 'iat': now,
                'exp': now + max(1, int(lifetime)), 'sub': subject,
                'jti': str(uuid.uuid4()), 'korora.kind': kind,
                'ear.verifier-id': {'developer': 'korora-nova',
                                    'build': 'korora-verifier'}}
        body.update(claims or {})
        return jwt.encode(body, self._key, algorithm=ALGORITHM,
                          headers={'kid': self.kid})


class TrustedKeys:
    """The verifier public keys a relying party pins, by key id.

    issuer, audience: what the tokens must say (korora-api's admin
    requests have their own); what: how messages name a token, option:
    the option that pins the keys.
    """

    def __init__(self, public_keys, issuer=ISSUER, audience=None,
                 what='the verifier\'s answer',
                 option=VERIFIER_KEYS):
        self._keys = {es256_keys.key_id(key): key for key in public_keys}
        self.issuer = issuer
        self.audience = audience
        self.what = what
        self.option = option

    @classmethod
    def load(cls, paths, option=VERIFIER_KEYS):
        """The keys in the PEM files paths; option: where they are
        pinned, for the messages (a client's setting, not nova.conf's)."""
        if not paths:
            raise exception.ConfigurationError(
                '%s is empty: no answer of the verifier can be checked, so '
                'none would be believed' % option)
        return cls([es256_keys.load_public_key(path, 'verifier public key')
                    for path in paths], option=option)

    @classmethod
    def of(cls, signing_key):
        """The public half of signing_key (the verifier checks its own)."""
        return cls([signing_key._key.public_key()])

    def verify(self, token, kind, subject=None, nonce=None, expected=None):
        """The claims of token, if the verifier signed it, it has not
        expired, and it is of kind, about subject, bound to nonce and has
        every (claim, value) of expected; SignedResultError otherwise."""
        claims = self._decode(token)
        if claims.get('korora.kind') != kind:
            raise exception.SignedResultError(
                'a %s was sent where a %s was expected'
                % (claims.get('korora.kind'), kind))
        if subject is not None and claims.get('sub') != subject:
            raise exception.SignedResultError(
                'the verifier\'s %s is about %s, not %s'
                % (kind, claims.get('sub'), subject))
        if nonce is not None and claims.get('eat_nonce') != nonce_claim(
                nonce):
            raise exception.SignedResultError(
                'the verifier\'s %s is not bound to this nonce (replayed?)'
                % kind)
        for name, value in (expected or {}).items():
            if claims.get(name) != value:
                raise exception.SignedResultError(
                    'the verifier\'s %s is not for this %s (%s)'
                    % (kind, name.replace('korora.', ''), claims.get(name)))
        return claims

    def _decode(self, token):
        what = self.what
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
            raise exception.SignedResultError(
                '%s is missing or larger than %d bytes' % (what, MAX_TOKEN))
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise exception.SignedResultError(
                '%s is not a signed token: %s' % (what, error))
        key = self._keys.get(header.get('kid'))
        if key is None or header.get('alg') != ALGORITHM:
            if self.issuer == ISSUER:
                raise exception.SignedResultError(
                    'the answer is not signed by a pinned verifier key '
                    '(%s)' % self.option)
            raise exception.SignedResultError(
                '%s is not signed by a key of %s' % (what, self.option))
        required = ['exp', 'iat', 'iss', 'sub']
        if self.audience is not None:
            required.append('aud')
        try:
            return jwt.decode(token, key, algorithms=[ALGORITHM],
                              issuer=self.issuer, audience=self.audience,
                              leeway=LEEWAY,
                              options={'require': required})
        except jwt.ExpiredSignatureError:
            raise exception.SignedResultError('%s has expired' % what)
        except jwt.InvalidSignatureError:
            raise exception.SignedResultError(
                '%s has a bad signature (forged or altered)' % what)
        except jwt.PyJWTError as error:
            raise exception.SignedResultError(
                '%s is not valid: %s' % (what, error))


def verdict_claims(verdict, nonce=None):
    """EAR claims for a verdict (attestation.verdict.Verdict) of a host."""
    if verdict.trusted:
        status, vector = AFFIRMING, _VECTOR_TRUSTED
    elif verdict.evidence_valid:
        status, vector = CONTRAINDICATED, _VECTOR_UNRECOGNIZED
    else:
        status, vector = CONTRAINDICATED, _VECTOR_UNPROVEN
    claims = {'submods': {verdict.host: {
        'ear.status': status,
        'ear.trustworthiness-vector': dict(vector),
        'ear.appraisal-policy-id': verdict.policy or 'none',
        'korora.reasons': [str(reason) for reason in verdict.reasons]}}}
    if nonce is not None:
        claims['eat_nonce'] = nonce_claim(nonce)
    return claims


def host_status(claims, host):
    """(affirming?, reasons) of host in a result's claims."""
    submods = claims.get('submods')
    submod = submods.get(host) if isinstance(submods, dict) else None
    if not isinstance(submod, dict):
        return False, ['the verifier\'s result says nothing of %s' % host]
    reasons = submod.get('korora.reasons') or []
    if not isinstance(reasons, list):
        reasons = [str(reasons)]
    return submod.get('ear.status') == AFFIRMING, [str(r) for r in reasons]
