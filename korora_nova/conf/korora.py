"""Options of the [korora] group."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'korora',
    title='Kororā secure live migration',
    help='Options of korora-nova: the host TPM, attestation evidence and '
         'its appraisal.')

AK_ALGORITHMS = ('ecdsa-p256-sha256', 'rsassa-2048-sha256',
                 'rsapss-2048-sha256')

tpm_opts = [
    cfg.StrOpt(
        'tcti',
        default='device:/dev/tpmrm0',
        help='How to reach this host\'s TPM 2.0, as a TCTI name and its '
             'configuration separated by a colon: "device:/dev/tpmrm0" for '
             'the kernel resource manager, "swtpm:host=127.0.0.1,port=2321" '
             'for a software TPM, "mssim:host=...,port=..." for the '
             'reference simulator.'),
    cfg.StrOpt(
        'ak_algorithm',
        default='ecdsa-p256-sha256',
        choices=AK_ALGORITHMS,
        help='Key type and signing scheme of the attestation key (AK).'),
    cfg.StrOpt(
        'ak_persistent_handle',
        default='0x81010020',
        help='Persistent handle (endorsement range 0x81010000-0x8101FFFF) '
             'where the attestation key is kept after it is first created, '
             'so that its identity survives restarts.'),
    cfg.ListOpt(
        'ek_types',
        default=['EK-RSA2048', 'EK-ECC256'],
        help='Endorsement key types to look for, in order of preference, '
             'as named by the TCG EK Credential Profile (low range: '
             'EK-RSA2048, EK-ECC256). The first one whose certificate is in '
             'the TPM\'s NV memory is used.'),
]

attestation_opts = [
    cfg.ListOpt(
        'pcr_selection',
        default=['sha256:0,1,2,3,4,5,6,7,10'],
        help='PCRs that an attestation quote covers, as BANK:INDEX,... '
             'entries (tpm2-tools syntax), for example '
             '"sha256:0,1,2,3,7,10".'),
    cfg.StrOpt(
        'ek_ca_bundle',
        help='PEM file with the certificates (roots and intermediates) of '
             'the TPM manufacturers whose endorsement key certificates are '
             'accepted at enrollment.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(tpm_opts + attestation_opts, group=GROUP)


def list_opts():
    return {GROUP: tpm_opts + attestation_opts}
