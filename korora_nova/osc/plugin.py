"""``openstack korora ...``: the OSC plugin module.

python-openstackclient finds it through the ``openstack.cli.extension``
entry point and its commands through ``openstack.korora.v1``. The
client is korora_nova.client.v1 on OSC's keystoneauth session, so the
endpoint comes from Keystone's catalog (service type ``korora``) unless
``korora_endpoint_override`` is configured (clouds.yaml, or
``OS_KORORA_ENDPOINT_OVERRIDE``).

``policy record`` and ``audit anchor create`` believe only answers the
verifier signed, checked against the verifier public key(s) pinned by
``--os-korora-verifier-public-key`` (``OS_KORORA_VERIFIER_PUBLIC_KEY``,
or ``korora_verifier_public_key`` in clouds.yaml): PEM files, several
separated by commas while the verifier's key is rotated.
"""

from osc_lib import utils

from korora_nova.client import v1

# Not the name of one of openstackclient's own modules (compute,
# identity, ...): OSC would skip the plugin.
API_NAME = 'korora'
API_VERSION_OPTION = 'os_korora_api_version'
DEFAULT_API_VERSION = v1.API_VERSION
API_VERSIONS = (v1.API_VERSION,)
VERIFIER_KEY_SETTING = ('--os-korora-verifier-public-key (or '
                        'OS_KORORA_VERIFIER_PUBLIC_KEY)')


def make_client(instance):
    """korora-api's client for OSC's client manager."""
    configuration = instance.get_configuration()
    keys = configuration.get('korora_verifier_public_key') or ''
    return v1.Client(
        instance.session, interface=instance.interface,
        region_name=instance.region_name,
        endpoint_override=configuration.get('korora_endpoint_override'),
        api_version=instance._api_version[API_NAME],
        verifier_public_keys=[path.strip() for path in keys.split(',')
                              if path.strip()],
        verifier_keys_setting=VERIFIER_KEY_SETTING)


def build_option_parser(parser):
    """--os-korora-api-version and --os-korora-verifier-public-key,
    OSC global options."""
    parser.add_argument(
        '--os-korora-api-version', metavar='<korora-api-version>',
        default=utils.env('OS_KORORA_API_VERSION',
                          default=DEFAULT_API_VERSION),
        help='korora-api microversion, default=%s '
             '(Env: OS_KORORA_API_VERSION)' % DEFAULT_API_VERSION)
    parser.add_argument(
        '--os-korora-verifier-public-key', metavar='<pem-file>[,...]',
        default=utils.env('OS_KORORA_VERIFIER_PUBLIC_KEY'),
        help='The verifier\'s public key (PEM); a host\'s quote and an '
             'audit anchor are believed only when it signed them '
             '(Env: OS_KORORA_VERIFIER_PUBLIC_KEY)')
    return parser
