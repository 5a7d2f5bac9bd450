"""A Python client of korora-api 1.x, on a keystoneauth session.

``openstack korora ...`` (korora_nova/osc) and the Horizon plugin
(korora_nova/dashboard) use it: one place knows the API's URLs, its
microversion header and its error format. Every method returns the
decoded JSON of the answer; an error answer raises
``exception.APIRequestFailed`` with the status and the API's one-line
detail, never a traceback of ours.

Two answers are not taken from korora-api on its word: a host's quoted
PCR values (the operator signs a policy of them) and an audit anchor
(the operator keeps it outside the database). korora-api and the bus
between it and the verifier may be an attacker's, so the client asks
for them at microversion 1.2 with a nonce of its own, and returns only
what the verifier's token signed for that nonce says, checked against
the verifier public keys the client pins.
"""

import urllib.parse

from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ks_exceptions

from korora_nova.attestation import operator_answers
from korora_nova.attestation import results
from korora_nova import exception

SERVICE_TYPE = 'korora'
API_VERSION = '1.0'
# The microversion whose quote and audit anchor the verifier signs for
# the client's nonce.
SIGNED_READ_VERSION = '1.2'
# A page of a list as the API caps it ([korora_api] max_limit).
MAX_PAGE = 1000


def _quote(value):
    return urllib.parse.quote(str(value), safe='')


class Client:
    """korora-api through a keystoneauth session: the endpoint comes
    from the catalog (service type ``korora``) unless endpoint_override
    names it."""

    def __init__(self, session, interface='public', region_name=None,
                 endpoint_override=None, api_version=API_VERSION,
                 verifier_public_keys=(),
                 verifier_keys_setting='the client\'s verifier_public_keys'):
        """verifier_public_keys: PEM files of the verifier's public
        keys, which the quote and the audit anchor must be signed by;
        verifier_keys_setting: how the user pins them, for messages."""
        self.api_version = api_version
        self.verifier_public_keys = list(verifier_public_keys or ())
        self.verifier_keys_setting = verifier_keys_setting
        self._adapter = adapter.Adapter(
            session, service_type=SERVICE_TYPE, interface=interface,
            region_name=region_name, endpoint_override=endpoint_override)

    def _request(self, method, path, body=None, params=None, version=None):
        """version: the microversion this call needs at least (the
        client's own when it is later)."""
        headers = {'OpenStack-API-Version': '%s %s' % (
                       SERVICE_TYPE, _later(self.api_version, version)),
                   'Accept': 'application/json'}
        kwargs = {'headers': headers, 'raise_exc': False}
        if body is not None:
            kwargs['json'] = body
        if params:
            kwargs['params'] = {key: value for key, value in params.items()
                                if value is not None}
        try:
            response = self._adapter.request(path, method, **kwargs)
        except ks_exceptions.EndpointNotFound:
            raise exception.APIRequestFailed(
                status=None, reason='no korora endpoint in the catalog')
        except ks_exceptions.ClientException as error:
            raise exception.APIRequestFailed(status=None, reason=str(error))
        if response.status_code >= 400:
            raise exception.APIRequestFailed(
                status=response.status_code,
                reason='%s (HTTP %d)' % (_error_detail(response),
                                         response.status_code))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _pages(self, path, key, params=None, limit=None, envelope=None):
        """Every item of a list, following its next links; at most
        limit. envelope: the key the page is inside of, if any."""
        params = dict(params or {})
        items = []
        while limit is None or len(items) < limit:
            params['limit'] = MAX_PAGE if limit is None else min(
                MAX_PAGE, limit - len(items))
            page = self._request('GET', path, params=params)
            if envelope is not None:
                page = page[envelope]
            items.extend(page[key])
            marker = _next_marker(page.get('%s_links' % key))
            if marker is None or not page[key]:
                break
            params['marker'] = marker
        return items

    # Hosts.

    def hosts(self, limit=None):
        return self._pages('/hosts', 'hosts', limit=limit)

    def host(self, name, verdicts=None):
        return self._request('GET', '/hosts/%s' % _quote(name),
                             params={'verdicts': verdicts})['host']

    def enroll_host(self, name, policy=None, trust_on_first_use=False):
        return self._request('POST', '/hosts', body={
            'host': name, 'policy': policy,
            'trust_on_first_use': trust_on_first_use})['host']

    def delete_host(self, name):
        self._request('DELETE', '/hosts/%s' % _quote(name))

    def attest_host(self, name):
        return self._request('POST', '/hosts/%s/attest' % _quote(name))

    def quote_host(self, name):
        """The PCR values the host's TPM quotes now, as the verifier
        signed them for this call: {host, pcr_values {bank: {index:
        hex}}, quoted_at}; SignedResultError if the answer is not the
        verifier's."""
        keys = self._verifier_keys()
        nonce = operator_answers.new_nonce()
        quote = self._request('POST', '/hosts/%s/quote' % _quote(name),
                              body={'nonce': results.nonce_claim(nonce)},
                              version=SIGNED_READ_VERSION)['quote']
        return operator_answers.verified_quote(
            keys, _token(quote), name, nonce)

    def set_host_policy(self, name, policy):
        return self._request('PUT', '/hosts/%s/policy' % _quote(name),
                             body={'policy': policy})['host']

    # Policies.

    def policies(self, name=None, limit=None):
        return self._pages('/policies', 'policies', {'name': name},
                           limit=limit)

    def policy(self, name):
        return self._request('GET', '/policies/%s' % _quote(name))

    def policy_version(self, name, version):
        return self._request('GET', '/policies/%s/versions/%s' % (
            _quote(name), _quote(version)))['policy']

    def import_policy(self, document, signature, active=True):
        return self._request('POST', '/policies', body={
            'policy': document, 'signature': signature,
            'active': active})['policy']

    def activate_policy(self, name, version):
        return self._request('POST', '/policies/%s/versions/%s/activate' % (
            _quote(name), _quote(version)))['policy']

    def deactivate_policy(self, name, version):
        return self._request(
            'POST', '/policies/%s/versions/%s/deactivate' % (
                _quote(name), _quote(version)))['policy']

    # Migrations, the audit log, an instance's trust.

    def migrations(self, instance_uuid=None, host=None, state=None,
                   changed_since=None, changed_before=None, limit=None):
        return self._pages('/migrations', 'migrations', {
            'instance_uuid': instance_uuid, 'host': host, 'state': state,
            'changed_since': changed_since,
            'changed_before': changed_before}, limit=limit)

    def migration(self, uuid):
        return self._request('GET', '/migrations/%s'
                             % _quote(uuid))['migration']

    def audit_verify(self, head=None):
        return self._request('GET', '/audit/verify', params={'head': head})

    def audit_head(self):
        """The newest entry, or None when the log is empty."""
        return self._request('GET', '/audit/head')['head']

    def audit_anchors(self, limit=None):
        return self._pages('/audit/anchors', 'anchors', limit=limit)

    def create_audit_anchor(self, host):
        """Anchor the head with host's TPM: {seq, entry_hash, host,
        created_at} as the verifier signed them for this call; keep
        seq:entry_hash outside the database. SignedResultError if the
        answer is not the verifier's."""
        keys = self._verifier_keys()
        nonce = operator_answers.new_nonce()
        anchor = self._request('POST', '/audit/anchors', body={
            'host': host, 'nonce': results.nonce_claim(nonce)},
            version=SIGNED_READ_VERSION)['anchor']
        return operator_answers.verified_anchor(
            keys, _token(anchor), host, nonce)

    def instance_trust(self, uuid):
        """Every host the instance may move to now, or why not."""
        return self._pages('/instances/%s/trust' % _quote(uuid), 'hosts',
                           envelope='trust')

    def _verifier_keys(self):
        """The pinned verifier keys; none pinned, nothing believed
        (ConfigurationError naming the setting), before anything is
        asked."""
        return results.TrustedKeys.load(self.verifier_public_keys,
                                        option=self.verifier_keys_setting)


def _token(answer):
    """The verifier's token in an answer (checked by the caller);
    SignedResultError when there is none."""
    token = answer.get('token') if isinstance(answer, dict) else None
    if token is None:
        raise exception.SignedResultError(
            'the answer carries no token signed by the verifier (forged on '
            'the way, or korora-api or the verifier older than 1.2): '
            'nothing in it was believed')
    return token


def _later(version, needed):
    """version, or needed when it is later ("latest" is latest)."""
    if needed is None or version == 'latest':
        return version
    try:
        if tuple(map(int, version.split('.'))) >= tuple(
                map(int, needed.split('.'))):
            return version
    except ValueError:
        return version    # the API answers a malformed version itself
    return needed


def _next_marker(links):
    """The marker of a page's next link; None on the last page."""
    for link in links or ():
        if link.get('rel') == 'next':
            query = urllib.parse.urlsplit(link.get('href', '')).query
            markers = urllib.parse.parse_qs(query).get('marker')
            return markers[0] if markers else None
    return None


def _error_detail(response):
    """The API's one-line detail, else the status line."""
    try:
        return response.json()['errors'][0]['detail']
    except (ValueError, KeyError, IndexError, TypeError):
        return '%d %s' % (response.status_code, response.reason or '')
