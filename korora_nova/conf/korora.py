"""Options of the [korora] group."""

import socket

from oslo_config import cfg

# korora-libvirt-hook's own defaults (it reads no configuration file; a
# unit test keeps the two equal).
LIBVIRT_HOOK_SOCKET = '/run/korora/libvirt-hook.sock'
LIBVIRT_HOOK_TIMEOUT = 10.0

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
    cfg.IntOpt(
        'attestations_in_flight',
        default=64,
        min=1,
        max=1024,
        help='Scheduled attestations each verifier worker keeps waiting '
             'for their quotes at once. A worker attests at most this many '
             'hosts per TPM latency: with 250 ms per quote, 64 give up to '
             '256 attestations a second, if the CPU keeps up.'),
    cfg.IntOpt(
        'verdict_batch_size',
        default=100,
        min=1,
        max=1000,
        help='Verdicts of scheduled attestations that a verifier worker '
             'writes in one database transaction (one lock of the audit '
             'log). A batch is written when it is full or when no other '
             'attestation is waiting.'),
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
             'certify a key, open a sealed secret or sign a manifest, or '
             'for the verifier to answer a step; no answer is a step that '
             'could not run (see step_retries).'),
    cfg.IntOpt(
        'step_retries',
        default=4,
        min=0,
        help='How many times a live-migration hook tries a step again when '
             'it could not run (a vTPM manager restarting, the verifier '
             'or the message broker unreachable, the verifier\'s database '
             'busy), before the migration is rolled back (nothing has run '
             'on the destination yet) or held paused on the destination '
             'for recovery. Refusals for a reason (an untrusted host, a '
             'bad signature) are never retried.'),
    cfg.FloatOpt(
        'step_retry_interval',
        default=1.0,
        min=0.0,
        help='Seconds before the first retry of a step; the wait grows by '
             'this much after each retry, up to step_retry_max_interval.'),
    cfg.FloatOpt(
        'step_retry_max_interval',
        default=5.0,
        min=0.0,
        help='The longest wait between two tries of a step.'),
    cfg.IntOpt(
        'recovery_interval',
        default=60,
        min=0,
        help='Seconds between two recovery rounds: nova-compute finishes or '
             'rolls back the migrations it takes part in that are stuck '
             '(and resumes or quarantines the instances it holds), and '
             'korora-verifier aborts stale records that never got past '
             'KEY_CERTIFIED (stale_migration_age). 0 runs recovery only '
             'when nova-compute starts.'),
    cfg.IntOpt(
        'recovery_age',
        default=60,
        min=0,
        help='Seconds a migration\'s record must have stayed in the same '
             'state before a recovery round touches it. nova-compute also '
             'leaves alone every instance Nova is working on (task_state '
             'set), so this only covers the moment between Nova\'s last '
             'step and Kororā\'s commit on the source.'),
    cfg.IntOpt(
        'stale_migration_age',
        default=3600,
        min=1,
        help='korora-verifier: seconds after which a recovery round aborts '
             'a migration that never got past KEY_CERTIFIED (nothing has '
             'left its source). Longer than a live migration may wait in '
             'nova-compute\'s queue ([DEFAULT] '
             'max_concurrent_live_migrations); a vTPM manager forgets its '
             'per-migration keys after an hour anyway.'),
]

trust_boundary_opts = [
    cfg.StrOpt(
        'verifier_signing_key',
        default='/etc/korora/verifier-signing-key.pem',
        help='korora-verifier (and korora-manage on the control plane): '
             'the EC P-256 private key (PEM, mode 0600, readable by the '
             'verifier alone) that signs the verifier\'s answers: '
             'attestation results for the live-migration hooks, challenges '
             'and per-migration authorizations for the vTPM managers. No '
             'compute host holds it. Create it with "korora-manage '
             'signing-key create".'),
    cfg.ListOpt(
        'verifier_public_keys',
        default=['/etc/korora/verifier-public-key.pem'],
        help='Every host: the verifier public keys (PEM files) whose '
             'signatures this host believes. An answer of the verifier '
             'signed by any other key, expired, or bound to another nonce '
             'or migration is refused. To rotate the signing key, pin the '
             'new public key beside the old one everywhere, switch the '
             'verifier to the new key, then remove the old one.'),
    cfg.IntOpt(
        'result_lifetime',
        default=60,
        min=5,
        max=3600,
        help='Seconds an attestation result or challenge signed by the '
             'verifier stays valid. The verifier also refuses a '
             'destination\'s signed migration request made more than '
             'this many seconds from its own clock.'),
    cfg.IntOpt(
        'request_certify_window',
        default=10000,
        min=100,
        max=600000,
        help='Milliseconds of the destination TPM\'s own clock allowed '
             'between the quote that signs its migration request and the '
             'certification of its key for that migration, which the '
             'verifier asks for at once. Only then does the request\'s '
             'quote stand as the destination\'s attestation; otherwise the '
             'key is refused (a stale or replayed request), and the '
             'migration is refused with the reason. The TPM\'s clock '
             'cannot be set back, so an old quote cannot be made to look '
             'recent.'),
    cfg.IntOpt(
        'authorization_lifetime',
        default=300,
        min=5,
        max=86400,
        help='Seconds a verifier-signed authorization of one per-migration '
             'call to a vTPM manager (certify a key, open the sealed '
             'secret, measure, advance the counter) stays valid. The hooks '
             'ask for each just before the call.'),
    cfg.StrOpt(
        'instance_state_backend',
        default='libvirt',
        choices=[('libvirt', 'the instances of this host\'s libvirtd '
                  '([korora] libvirt_uri)'),
                 ('files', 'instance files below [korora] '
                  'instance_state_root (tests and the demo)')],
        help='korora-vtpm-manager: where it measures an instance\'s vTPM '
             'state, NVRAM and domain itself before it signs a manifest '
             'or an arrival measurement (nobody hands it a digest to '
             'sign).'),
    cfg.StrOpt(
        'libvirt_uri',
        default='qemu:///system',
        help='korora-vtpm-manager: the libvirt connection of this host\'s '
             'hypervisor (xen:///system on a Xen host).'),
    cfg.StrOpt(
        'instance_state_root',
        default='$state_path/instances',
        help='korora-vtpm-manager with instance_state_backend = files: the '
             'folder of the per-host instance files.'),
    cfg.ListOpt(
        'api_public_keys',
        default=[],
        help='korora-verifier: the public keys (PEM, EC P-256) of the '
             'korora-api processes whose signed admin requests it obeys '
             '(enroll or remove a host, attest it now, set its policy, '
             'import, activate or deactivate a policy version). A request '
             'that is unsigned, signed by another key, expired, replayed, '
             'for another operation or with other arguments is refused: '
             'anyone on the message bus can send the call, only korora-api '
             'can sign it. Empty: the verifier obeys no admin request '
             'from the bus (korora-manage keeps working).'),
    cfg.IntOpt(
        'api_request_lifetime',
        default=30,
        min=5,
        max=600,
        help='Seconds an admin request signed by korora-api stays valid. '
             'The verifier remembers each request\'s id in its database '
             'until then, and refuses it a second time.'),
]

libvirt_hook_opts = [
    cfg.StrOpt(
        'libvirt_hook_socket',
        default=LIBVIRT_HOOK_SOCKET,
        help='UNIX socket of this host\'s korora-vtpm-manager: it answers '
             'the libvirt hook (korora-libvirt-hook, installed in '
             '/etc/libvirt/hooks/qemu.d/ and libxl.d/) when a live '
             'migration comes in, and nova-compute\'s per-migration calls '
             '(open the sealed vTPM secret, measure, advance the counter), '
             'which never cross the message bus. The manager creates it '
             '(mode 0600: root, which runs libvirt\'s hooks, and the '
             'manager\'s user may connect; run nova-compute as that user '
             'or as root), and its folder if missing. Set the same path in '
             'nova-compute\'s configuration; korora-manage libvirt-hook '
             'install writes it into the hook. Empty: not served, and every '
             'Korora migration to or from this host is refused.'),
    cfg.BoolOpt(
        'libvirt_hook_require_approval_for_all',
        default=False,
        help='Make the libvirt hook (korora-libvirt-hook, installed in '
             '/etc/libvirt/hooks/qemu.d/ and libxl.d/) refuse the incoming '
             'live migration of every domain that has no Korora-approved '
             'migration in flight, not only of domains with a vTPM.'),
    cfg.FloatOpt(
        'libvirt_hook_timeout',
        default=LIBVIRT_HOOK_TIMEOUT,
        min=0.5,
        max=3599,
        help='Seconds the libvirt hook may take to decide on an incoming '
             'live migration, counted from its start; libvirt itself waits '
             'for a hook without a limit. When they have passed, the hook '
             'refuses the migration. korora-manage libvirt-hook install '
             'writes this value into the hook; korora-vtpm-manager bounds '
             'each request by it.'),
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


API_GROUP = cfg.OptGroup(
    'korora_api',
    title='korora-api, the REST API',
    help='korora-api: the REST API behind Keystone (keystonemiddleware\'s '
         '[keystone_authtoken]) and oslo.policy ([oslo_policy]). It reads '
         'the verifier\'s database (a read-only account is enough) and '
         'sends every write to korora-verifier, signed with its own key.')

api_opts = [
    cfg.HostAddressOpt(
        'bind_host',
        default='0.0.0.0',
        help='korora-api (the development server): the address to listen '
             'on. Under uWSGI, mod_wsgi or Apache (korora-api-wsgi) the '
             'web server binds.'),
    cfg.PortOpt(
        'bind_port',
        default=8790,
        help='korora-api (the development server): the TCP port to listen '
             'on.'),
    cfg.IntOpt(
        'max_limit',
        default=1000,
        min=1,
        max=10000,
        help='The most items one page of a list holds, whatever the '
             'limit a request asks for.'),
    cfg.IntOpt(
        'default_limit',
        default=100,
        min=1,
        max=10000,
        help='Items per page of a list when a request gives no limit (at '
             'most max_limit).'),
    cfg.StrOpt(
        'signing_key',
        default='/etc/korora/api-signing-key.pem',
        help='The EC P-256 private key (PEM, mode 0600, readable by '
             'korora-api alone) that signs each admin request to '
             'korora-verifier. List its public key in the verifier\'s '
             '[korora] api_public_keys. Create both with "korora-manage '
             'signing-key create --path KEY --public PUB".'),
    cfg.IntOpt(
        'verifier_timeout',
        default=60,
        min=1,
        help='Seconds korora-api waits for korora-verifier\'s answer to a '
             'write (enrollment and attestation ask the host\'s TPM).'),
]


UPGRADE_LEVELS_GROUP = cfg.OptGroup(
    'upgrade_levels',
    title='RPC version caps during a rolling upgrade',
    help='Cap the RPC API versions korora services send while some nodes '
         'still run an older release, as Nova\'s own [upgrade_levels] '
         'does: a version ("2.0") or a release name. Empty: no cap.')

upgrade_levels_opts = [
    cfg.StrOpt(
        'korora_verifier',
        default='',
        help='Version cap of the verifier\'s RPC API (korora_nova.'
             'rpcapi.verifier).'),
    cfg.StrOpt(
        'korora_vtpm_manager',
        default='',
        help='Version cap of the vTPM manager\'s RPC API (korora_nova.'
             'rpcapi.vtpm_manager).'),
]


DIRECT_MIGRATION_GROUP = cfg.OptGroup(
    'korora_direct_migration',
    title='Migrations korora-manage runs itself',
    help='korora-manage server migrate, on hosts Nova does not manage '
         '(Xen dom0s): it runs the source\'s steps here and the '
         'destination\'s there (korora-manage server receive, through '
         'peer_command), and moves the domain with libvirt. In every '
         'template {host} is the destination\'s host name ([DEFAULT] '
         'host there).')

direct_migration_opts = [
    cfg.StrOpt(
        'peer_command',
        default='ssh -T -o BatchMode=yes root@{host} korora-manage server '
                'receive',
        help='The command that runs the destination\'s half (korora-manage '
             'server receive) with its standard input and output as the '
             'pipe between the halves. Nothing on that pipe is believed: '
             'each half asks the verifier for itself.'),
    cfg.StrOpt(
        'libvirt_uri',
        default='xen+tls://{host}/system',
        help='The destination\'s libvirt, as this host opens it for the '
             'migration (xen+tls, or qemu+tls for QEMU).'),
    cfg.StrOpt(
        'stream_uri',
        default='tcp://{host}',
        help='Where the migration stream goes (libvirt\'s migrate URI); '
             'empty: libvirt\'s choice.'),
    cfg.StrOpt(
        'listen_address',
        default='',
        help='The address the destination listens on for the stream '
             '(QEMU only); empty: libvirt\'s choice.'),
    cfg.FloatOpt(
        'peer_timeout',
        default=300.0,
        min=1.0,
        help='Seconds the source waits for each answer of the destination\'s '
             'half (its steps ask the verifier and measure the disks).'),
]


DATABASE_GROUP = cfg.OptGroup(
    'korora_database',
    title='Verifier database',
    help='The verifier\'s database: hosts, policies, verdicts, '
         'migrations. korora-verifier and korora-manage (control plane) '
         'use it read-write; nova-scheduler\'s filter reads trust from '
         'it, through a read-only account. nova-compute, '
         'korora-vtpm-manager and korora-libvirt-hook must not have it: '
         'they refuse to start when a connection is set.')


def register_opts(conf):
    from oslo_db import options as db_options

    conf.register_group(GROUP)
    conf.register_opts(tpm_opts + attestation_opts + host_trust_opts +
                       migration_opts + trust_boundary_opts +
                       libvirt_hook_opts + audit_opts, group=GROUP)
    conf.register_group(API_GROUP)
    conf.register_opts(api_opts, group=API_GROUP)
    conf.register_group(UPGRADE_LEVELS_GROUP)
    conf.register_opts(upgrade_levels_opts, group=UPGRADE_LEVELS_GROUP)
    conf.register_group(DIRECT_MIGRATION_GROUP)
    conf.register_opts(direct_migration_opts, group=DIRECT_MIGRATION_GROUP)
    conf.register_group(DATABASE_GROUP)
    conf.register_opts(db_options.database_opts, group=DATABASE_GROUP)
    # Not below state_path (/var/lib/korora): on a host that runs both,
    # that folder is the vTPM manager's (root's), and the verifier's own
    # user writes this one (etc/systemd/korora-verifier.service).
    conf.set_default('connection',
                     'sqlite:////var/lib/korora-verifier/korora.sqlite',
                     group=DATABASE_GROUP)
    # nova-scheduler reads verdicts through this section: an unreachable
    # database must fail the request at once (no host passes), not stall
    # it through oslo.db's start-up retries.
    conf.set_default('max_retries', 0, group=DATABASE_GROUP)
    # A busy database is waited out within one verifier answer (about
    # 25 s on SQLite with its 5 s busy timeout per try), inside
    # nova-compute's migration_step_timeout; past that the verifier
    # answers "could not run" and the hook tries the step again.
    conf.set_default('db_max_retries', 3, group=DATABASE_GROUP)
    conf.set_default('db_retry_interval', 0.5, group=DATABASE_GROUP)
    conf.set_default('db_max_retry_interval', 2, group=DATABASE_GROUP)


def list_opts():
    from oslo_db import options as db_options

    return {'DEFAULT': [host_opt],
            GROUP: (tpm_opts + attestation_opts + host_trust_opts +
                    migration_opts + trust_boundary_opts +
                    libvirt_hook_opts + audit_opts),
            API_GROUP: api_opts,
            UPGRADE_LEVELS_GROUP: upgrade_levels_opts,
            DIRECT_MIGRATION_GROUP: direct_migration_opts,
            DATABASE_GROUP: db_options.database_opts}
