"""Who may ask a vTPM manager: the verifier, and no one else.

Anyone on the message bus can call a vTPM manager. So it honours an
attestation challenge only when the verifier signed it (a challenge
naming this host, the nonce and the purpose to quote for), and a
per-migration call (certify a key, open the sealed secret, measure,
advance the counter) only with the verifier's authorization naming this
migration, this host, its role and the action, unexpired, used once.
Everything else is refused with the reason, and the refusal is logged.
"""

import threading
import time

from oslo_log import log as logging

from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova import exception

LOG = logging.getLogger(__name__)

# Authorizations already used, remembered until they expire: at most
# this many (each is one the verifier issued, so the bound is generous).
MAX_REMEMBERED = 4096
NONCE_SIZE = 64

# Challenge purposes a quote may be made for.
CHALLENGE_PURPOSES = {'attest': purpose.ATTEST, 'anchor': purpose.ANCHOR}

# Actions, and the role a host plays in each (kept with the token format).
CERTIFY_KEY = results.CERTIFY_KEY
TRANSFER = results.TRANSFER
MEASURE = results.MEASURE
VERIFY = results.VERIFY
COMMIT = results.COMMIT
ENROLL = results.ENROLL
ROLES = results.ROLES


class Gate:
    """Checks verifier-signed tokens for the manager of host."""

    def __init__(self, host, trusted_keys):
        self.host = host
        self.trusted_keys = trusted_keys
        self._used = {}
        self._lock = threading.Lock()

    @classmethod
    def from_conf(cls, conf, host):
        return cls(host, results.TrustedKeys.load(
            conf.korora.verifier_public_keys))

    def challenge(self, token, what):
        """(nonce, purpose label) of a verifier-signed challenge for
        this host; NotAuthorized otherwise."""
        claims = self._check(token, results.CHALLENGE, what)
        label = CHALLENGE_PURPOSES.get(claims.get('korora.purpose'))
        if label is None:
            raise self._refuse(what, 'the challenge names no purpose this '
                               'manager quotes for')
        return self.nonce_of(claims, what), label

    def enrollment(self, token):
        """A verifier-signed enrollment challenge for this host."""
        claims = self._check(token, results.CHALLENGE, 'activate_credential')
        if claims.get('korora.purpose') != ENROLL:
            raise self._refuse('activate_credential', 'the challenge is '
                               'not for enrollment')
        return claims

    def authorize(self, token, action):
        """The claims of the verifier's authorization of action by this
        host, in its role, used once; NotAuthorized otherwise."""
        claims = self._check(token, results.AUTHORIZATION, action)
        if claims.get('korora.action') != action:
            raise self._refuse(action, 'the authorization is for %s'
                               % claims.get('korora.action'))
        if claims.get('korora.role') != ROLES[action]:
            raise self._refuse(action, 'this host is not the %s of the '
                               'migration' % ROLES[action])
        migration = claims.get('korora.migration')
        if not isinstance(migration, dict) or not isinstance(
                migration.get('uuid'), str):
            raise self._refuse(action,
                               'the authorization names no migration')
        host_key = ('dest_host' if ROLES[action] == 'destination'
                    else 'source_host')
        if migration.get(host_key) != self.host:
            raise self._refuse(action, 'the migration\'s %s is %s'
                               % (ROLES[action], migration.get(host_key)))
        self._use_once(claims, action)
        return claims

    def _check(self, token, kind, what):
        try:
            return self.trusted_keys.verify(token, kind, subject=self.host)
        except exception.SignedResultError as error:
            raise self._refuse(what, str(error))

    def nonce_of(self, claims, what):
        nonce = claims.get('eat_nonce')
        try:
            raw = results.nonce_bytes(nonce)
        except exception.SignedResultError as error:
            raise self._refuse(what, str(error))
        if not 0 < len(raw) <= NONCE_SIZE:
            raise self._refuse(what, 'the challenge\'s nonce is 1 to %d '
                               'bytes' % NONCE_SIZE)
        return raw

    def _use_once(self, claims, action):
        jti = claims.get('jti')
        if not isinstance(jti, str):
            raise self._refuse(action, 'the authorization has no id')
        now = time.time()
        with self._lock:
            for seen, until in list(self._used.items()):
                if until < now:
                    del self._used[seen]
            if jti in self._used:
                raise self._refuse(action, 'the authorization was used '
                                   'already (replayed)')
            if len(self._used) >= MAX_REMEMBERED:
                raise self._refuse(action, 'too many authorizations in use')
            # Remembered as long as the token verifies: results.verify
            # accepts it up to LEEWAY seconds after its expiry.
            self._used[jti] = float(claims.get('exp', now)) + results.LEEWAY

    def _refuse(self, what, reason):
        """Log the refusal; the NotAuthorized to raise."""
        LOG.warning('%s: %s refused: %s', self.host, what, reason)
        return exception.NotAuthorized('%s: %s refused: %s'
                                       % (self.host, what, reason))
