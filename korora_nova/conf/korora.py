"""Options of the [korora] group."""

import socket

from oslo_config import cfg

from korora_nova.hooks import libvirt_hook

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

host_opt = cfg.StrOpt(
    'host',
    default=socket.gethostname(),
    sample_default='<current_hostname>',
    help='This host\'s Nova compute host name, as in nova.conf [DEFAULT] '
         'host: the vTPM manager serves RPC under this name and the '
         'verifier enrolls hosts by it.')

attestation_opts = [
    cfg.StrOpt(
        'pcr_selection',
        default='sha256:0,1,2,3,4,5,6,7,10',
        help='PCRs that an attestation quote covers, in tpm2-tools syntax: '
             'BANK:INDEX,INDEX,... with banks joined by "+", for example '
             '"sha256:0,1,2,3,7,10".'),
    cfg.StrOpt(
        'ek_ca_bundle',
        help='PEM file with the certificates (roots and intermediates) of '
             'the TPM manufacturers whose endorsement key certificates are '
             'accepted at enrollment.'),
]


host_trust_opts = [
    cfg.IntOpt(
        'trust_ttl',
        default=300,
        min=1,
        help='Seconds a trusted verdict stays valid. An older verdict '
             'counts as unknown, and unknown counts as untrusted: keep it '
             'well above attestation_interval.'),
    cfg.IntOpt(
        'attestation_interval',
        default=60,
        min=1,
        help='Seconds between two scheduled attestations of each enrolled '
             'host by the verifier. Hosts also report PCR changes at once.'),
    cfg.FloatOpt(
        'attestation_timeout',
        default=10.0,
        min=0.1,
        help='Seconds the verifier waits for a vTPM manager\'s quote; no '
             'answer makes the host untrusted.'),
    cfg.FloatOpt(
        'pcr_watch_interval',
        default=0.25,
        min=0.01,
        help='Seconds between two reads of the attested PCRs by the vTPM '
             'manager; a change is reported to the verifier at once.'),
    cfg.IntOpt(
        'self_measurement_pcr',
        default=10,
        min=0,
        max=23,
        help='PCR into which the vTPM manager measures its own code and '
             'effective configuration when it starts (once per boot of the '
             'TPM). The reference policy must allow the resulting value.'),
    cfg.StrOpt(
        'xen_vtpmmgr_image',
        help='Xen hosts: the kernel image of Xen\'s vTPM manager domain '
             '(vtpmmgr), for example '
             '/usr/lib/xen/boot/vtpmmgr-stubdom.gz. The vTPM manager adds '
             'its SHA-256 to its self-measurement (self_measurement_pcr) '
             'and hashes it again before every quote, measuring any '
             'change first, so the host\'s quote covers vtpmmgr and its '
             'policy judges it. It must be a regular file, not a '
             'symbolic link, of at most 64 MiB; if it cannot be read, '
             'the vTPM manager neither starts nor quotes. Leave unset on '
             'KVM hosts.'),
    cfg.StrOpt(
        'xen_vtpmmgr_libvirt_uri',
        help='Xen hosts with xen_vtpmmgr_image: a libvirt URI '
             '(xen:///system) at which the vTPM manager checks, when it '
             'starts and before every quote, that the running vtpmmgr '
             'domain boots xen_vtpmmgr_image. A vtpmmgr domain booted '
             'from another kernel is measured as a mismatch, so the host '
             'fails its policy until the TPM restarts; no running '
             'vtpmmgr domain, or libvirt out of reach, stops the vTPM '
             'manager from starting or quoting. libvirt lists only the '
             'domains it started: leave unset when xl starts vtpmmgr.'),
    cfg.StrOpt(
        'state_path',
        default='/var/lib/korora',
        help='Folder where korora services keep their local state.'),
    cfg.StrOpt(
        'default_policy',
        help='Reference policy assigned to hosts enrolled without naming '
             'one.'),
    cfg.BoolOpt(
        'enforce_for_all_instances',
        default=False,
        help='Make TrustedVTPMFilter apply to every instance, not only to '
             'those with a vTPM or the flavor extra spec '
             'korora:trusted_host=required.'),
    cfg.BoolOpt(
        'update_placement_traits',
        default=False,
        help='Set or clear the Placement trait CUSTOM_KORORA_TRUSTED on a '
             'host\'s compute node resource provider when its trust '
             'changes, so Placement pre-filters before Nova\'s filters '
             'run. Needs the [placement] credentials.'),
    cfg.StrOpt(
        'manager_topic',
        default='korora-vtpm-manager',
        help='RPC topic of the vTPM managers (one server per compute host, '
             'named after [DEFAULT] host).'),
    cfg.IntOpt(
        'verifier_workers',
        default=1,
        min=1,
        help='Worker processes of korora-verifier. They share the database '
             'and the RPC topic; each scheduled attestation is claimed by '
             'exactly one of them.'),
    cfg.StrOpt(
        'verifier_topic',
        default='korora-verifier',
        help='RPC topic shared by the verifier\'s workers.'),
]
migration_opts = [
    cfg.StrOpt(
        'base_compute_driver',
        default='libvirt.LibvirtDriver',
        help='The compute driver that [DEFAULT] compute_driver = '
             'korora.KororaDriver wraps with the live-migration hooks, named '
             'as compute_driver names drivers (relative to nova.virt). Every '
             'method but the live-migration ones stays this driver\'s.'),
    cfg.StrOpt(
        'local_channel_key',
        default='$state_path/local-channel.key',
        help='File with the key that the vTPM manager and nova-compute of '
             'this host share (created by the vTPM manager, mode 0640). '
             'An unwrapped vTPM secret crosses the message bus from the '
             'vTPM manager to nova-compute only encrypted with it, so the '
             'secret is in clear on the destination host alone. Make it '
             'readable by the user nova-compute runs as.'),
    cfg.StrOpt(
        'migration_counter_index',
        default='0x01500020',
        help='NV index (owner range 0x01000000-0x01BFFFFF) of the '
             'monotonic counter a source host binds its integrity manifests '
             'to and advances on every committed migration, so an old '
             'manifest or an old copy of a vTPM state cannot be replayed.'),
    cfg.BoolOpt(
        'verify_before_resume',
        default=False,
        help='libvirt: the guest arrives paused (VIR_MIGRATE_PAUSED) and '
             'resumes only once the destination checked the integrity '
             'manifest; a mismatch leaves it paused and quarantined. Off, '
             'the guest runs on the destination while it is checked (no '
             'added downtime).'),
    cfg.BoolOpt(
        'allow_unencrypted_migration_stream',
        default=False,
        help='libvirt: live-migrate vTPM instances even when the migration '
             'stream is not encrypted ([libvirt] '
             'live_migration_with_native_tls off). The guest\'s memory and '
             'its vTPM state then cross the network in clear: only for '
             'networks you trust.'),
    cfg.FloatOpt(
        'migration_step_timeout',
        default=30.0,
        min=0.1,
        help='Seconds a live-migration hook waits for a vTPM manager to '
             'certify a key, open a sealed secret or sign a manifest; no '
             'answer aborts the migration.'),
]

libvirt_hook_opts = [
    cfg.StrOpt(
        'libvirt_hook_socket',
        default=libvirt_hook.DEFAULT_SOCKET,
        help='UNIX socket on which korora-vtpm-manager answers the libvirt '
             'hook (korora-libvirt-hook, installed in /etc/libvirt/hooks/'
             'qemu.d/ and libxl.d/) when a live migration comes in. The '
             'manager creates it (mode 0600: root, which runs libvirt\'s '
             'hooks, and the manager\'s user may connect), and its folder '
             'if missing; it then needs the [korora_database] section to '
             'read the migration records. korora-manage libvirt-hook '
             'install writes this path into the hook. Empty: not served, '
             'and an installed hook refuses every incoming live '
             'migration.'),
    cfg.BoolOpt(
        'libvirt_hook_require_approval_for_all',
        default=False,
        help='Make the libvirt hook (korora-libvirt-hook, installed in '
             '/etc/libvirt/hooks/qemu.d/ and libxl.d/) refuse the incoming '
             'live migration of every domain that has no Korora-approved '
             'migration in flight, not only of domains with a vTPM.'),
    cfg.FloatOpt(
        'libvirt_hook_timeout',
        default=libvirt_hook.DEFAULT_TIMEOUT,
        min=0.5,
        max=3599,
        help='Seconds the libvirt hook may take to decide on an incoming '
             'live migration, counted from its start; libvirt itself waits '
             'for a hook without a limit. When they have passed, the hook '
             'refuses the migration. korora-manage libvirt-hook install '
             'writes this value into the hook; korora-vtpm-manager bounds '
             'each request, and its database driver\'s timeouts, by it.'),
]


audit_opts = [
    cfg.ListOpt(
        'policy_signing_keys',
        default=[],
        help='PEM files of the operator public keys (EC P-256) whose '
             'signatures make a reference policy version valid. List '
             'several to rotate keys: a version signed by any of them is '
             'accepted, so add the new key, re-sign or import under it, '
             'then remove the old one. A policy version not signed by a '
             'listed key is ignored by appraisal and reported by '
             '"korora-manage audit verify"; when none is listed, no '
             'policy is valid and every host is untrusted (fail '
             'closed).'),
    cfg.IntOpt(
        'audit_anchor_entries',
        default=100,
        min=1,
        help='Anchor the audit log\'s head in a TPM once this many '
             'entries were appended since the last anchor (or after '
             'audit_anchor_interval, whichever comes first).'),
    cfg.IntOpt(
        'audit_anchor_interval',
        default=300,
        min=1,
        help='Seconds after which the verifier anchors an audit log head '
             'that has new entries, however few (see '
             'audit_anchor_entries).'),
    cfg.StrOpt(
        'audit_anchor_host',
        default='',
        help='The enrolled host whose vTPM manager anchors the audit '
             'log\'s head on the verifier\'s schedule. Empty: no '
             'scheduled anchoring (anchor with "korora-manage audit '
             'anchor"); entries since the last anchor can then be '
             'rewritten unnoticed by anyone who can write the database.'),
]


DATABASE_GROUP = cfg.OptGroup(
    'korora_database',
    title='Verifier database',
    help='The verifier\'s database: hosts, policies, verdicts, '
         'migrations. The scheduler filter reads verdicts from it, so '
         'nova-scheduler needs this section too, and so does '
         'korora-vtpm-manager on a host where the libvirt hook is '
         'installed: it reads the migration records to answer the hook.')


def register_opts(conf):
    from oslo_db import options as db_options

    conf.register_group(GROUP)
    conf.register_opts(tpm_opts + attestation_opts + host_trust_opts +
                       migration_opts + libvirt_hook_opts + audit_opts,
                       group=GROUP)
    conf.register_group(DATABASE_GROUP)
    conf.register_opts(db_options.database_opts, group=DATABASE_GROUP)
    conf.set_default('connection', 'sqlite:////var/lib/korora/korora.sqlite',
                     group=DATABASE_GROUP)
    # nova-scheduler reads verdicts through this section: an unreachable
    # database must fail the request at once (no host passes), not stall
    # it through oslo.db's start-up retries.
    conf.set_default('max_retries', 0, group=DATABASE_GROUP)


def list_opts():
    from oslo_db import options as db_options

    return {'DEFAULT': [host_opt],
            GROUP: (tpm_opts + attestation_opts + host_trust_opts +
                    migration_opts + libvirt_hook_opts + audit_opts),
            DATABASE_GROUP: db_options.database_opts}
