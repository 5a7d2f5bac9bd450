"""The Placement trait CUSTOM_KORORA_TRUSTED on trusted hosts' compute
node resource providers.

A pre-filter only: flavors that require the trait
(``trait:CUSTOM_KORORA_TRUSTED=required``) let Placement drop untrusted
hosts before Nova's filters run, but TrustedVTPMFilter still decides. A
trait that nova-compute drops again when it refreshes its provider only
excludes a host (fail closed).
"""

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading
from oslo_log import log as logging

from korora_nova import exception

LOG = logging.getLogger(__name__)

TRAIT = 'CUSTOM_KORORA_TRUSTED'
GROUP = 'placement'
HEADERS = {'OpenStack-API-Version': 'placement 1.6'}
RETRIES = 5


def register_opts(conf):
    ks_loading.register_session_conf_options(conf, GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)
    ks_loading.register_adapter_conf_options(conf, GROUP)


class PlacementTraits:

    def __init__(self, conf, adapter=None):
        if adapter is None:
            register_opts(conf)
            auth = ks_loading.load_auth_from_conf_options(conf, GROUP)
            session = ks_loading.load_session_from_conf_options(
                conf, GROUP, auth=auth)
            adapter = ks_loading.load_adapter_from_conf_options(
                conf, GROUP, session=session, auth=auth,
                service_type='placement')
        self.client = adapter

    def _request(self, method, url, **kwargs):
        try:
            response = self.client.request(url, method, headers=HEADERS,
                                           raise_exc=False, **kwargs)
        except ks_exceptions.ClientException as error:
            raise exception.KororaError('Placement unreachable: %s' % error)
        return response

    def _provider(self, host):
        response = self._request('GET', '/resource_providers',
                                 params={'name': host})
        if response.status_code != 200:
            raise exception.KororaError(
                'Placement answered %d to a look-up of %s: %s'
                % (response.status_code, host, response.text[:200]))
        providers = response.json().get('resource_providers', [])
        if not providers:
            raise exception.KororaError(
                'no Placement resource provider named %s' % host)
        return providers[0]['uuid']

    def set_trusted(self, host, trusted):
        """Add or remove the trait; retries on generation conflicts."""
        self._request('PUT', '/traits/%s' % TRAIT)
        uuid = self._provider(host)
        for _ in range(RETRIES):
            current = self._request('GET',
                                    '/resource_providers/%s/traits' % uuid)
            if current.status_code != 200:
                break
            body = current.json()
            traits = set(body['traits'])
            wanted = traits | {TRAIT} if trusted else traits - {TRAIT}
            if wanted == traits:
                return
            response = self._request(
                'PUT', '/resource_providers/%s/traits' % uuid,
                json={'traits': sorted(wanted),
                      'resource_provider_generation':
                      body['resource_provider_generation']})
            if response.status_code == 200:
                LOG.info('%s: Placement trait %s %s', host, TRAIT,
                         'set' if trusted else 'cleared')
                return
            if response.status_code != 409:
                break
        raise exception.KororaError(
            'could not %s trait %s on %s' % (
                'set' if trusted else 'clear', TRAIT, host))
