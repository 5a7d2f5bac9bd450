"""korora-manage: the operator's command line.

Commands that need the verifier database import it when they run: the
offline "evidence check" then starts in a fraction of the time.

Exit codes: 0 success (for "evidence check": the evidence is valid, and
trusted when a policy was given), 1 a negative answer (untrusted
evidence, a changed or truncated audit log), 2 a usage error (a missing
or unreadable file, a bad option, an unknown host or migration).
"""

import json
import os
import sys

from oslo_config import cfg
from oslo_db import exception as db_exception
from oslo_log import log as logging

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import verdict as verdict_module
from korora_nova import conf
from korora_nova import exception
from korora_nova.libvirt_hook import install as hook_install

CONF = conf.CONF
LOG = logging.getLogger(__name__)

EXIT_OK, EXIT_NEGATIVE, EXIT_USAGE = 0, 1, 2
MAX_INPUT_FILE = 64 * 1024


USAGE_ERRORS = (exception.UsageError, exception.PolicyError,
                exception.ConfigurationError, exception.HostNotFound,
                exception.PolicyNotFound, exception.HostExists,
                exception.PolicyExists, exception.HookInstallError)


def read_file(path, what, limit=MAX_INPUT_FILE):
    """Read at most limit bytes; a larger file is refused, not truncated."""
    try:
        with open(path, 'rb') as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        raise exception.UsageError('cannot read %s %s: %s'
                                   % (what, path, error.strerror))
    if len(data) > limit:
        raise exception.UsageError('%s %s is larger than %d bytes'
                                   % (what, path, limit))
    return data


def _pcr_values_for(args, message):
    """The PCR values, from --pcr-values or --pcrs; None if unusable."""
    if args.pcrs:
        data = read_file(args.pcrs, 'PCR file',
                         pcr_values.MAX_TOOLS_PCR_FILE)
        selection, values = pcr_values.from_tools_serialized(data)
        quoted = _quoted_selection(message)
        if quoted is not None and tuple(selection) != quoted:
            raise exception.EvidenceError(
                'the PCR file covers %s but the quote covers %s'
                % (_pcr_list(selection), _pcr_list(quoted)))
        return values
    data = read_file(args.pcr_values, 'PCR values file')
    # Back-to-back values are in the quote's selection order: the quote
    # says which PCRs they are.
    selection = evidence.parse_attestation(message).pcr_selection
    return pcr_values.from_back_to_back(data, list(selection))


def _quoted_selection(message):
    """The quote's PCR selection, or None when the quote is malformed
    (the appraisal then says why)."""
    try:
        return evidence.parse_attestation(message).pcr_selection
    except exception.EvidenceError:
        return None


def _pcr_list(selection):
    return ','.join('%s:%d' % pcr for pcr in selection) or 'no PCR'


def evidence_check(args):
    """Judge a quote made by tpm2_quote (or by korora) and print JSON."""
    if bool(args.pcr_values) == bool(args.pcrs):
        raise exception.UsageError(
            'give exactly one of --pcr-values and --pcrs')
    try:
        nonce = bytes.fromhex(args.nonce)
    except ValueError:
        raise exception.UsageError(
            '--nonce %r is not hexadecimal' % args.nonce)
    try:
        ak_key = appraisal.load_public_key(
            read_file(args.ak_pub, 'AK public key'))
    except exception.EvidenceError as error:
        raise exception.UsageError('--ak-pub %s: %s' % (args.ak_pub, error))
    reference = policy_module.load(args.policy) if args.policy else None
    message = read_file(args.message, 'quote message')
    signature = read_file(args.signature, 'signature')
    try:
        values = _pcr_values_for(args, message)
    except exception.EvidenceError as error:
        result = verdict_module.Verdict(
            False, False, (verdict_module.Reason(
                verdict_module.MALFORMED, str(error)),),
            policy=reference.label if reference else None)
    else:
        result = appraisal.appraise_quote(
            evidence.QuoteEvidence(message, signature, values), ak_key,
            nonce, reference)
    print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    if not result.evidence_valid:
        return EXIT_NEGATIVE
    if reference is not None and not result.trusted:
        return EXIT_NEGATIVE
    return EXIT_OK


# db

def db_sync(args):
    from korora_nova.db import migration
    migration.db_sync()
    print('database at revision %s' % migration.db_version())
    return EXIT_OK


def db_version(args):
    from korora_nova.db import migration
    print(migration.db_version() or 'empty')
    return EXIT_OK


# host

def _safe_url(url):
    from korora_nova.db import api as db
    return db.safe_url(url)


def _attestor():
    from korora_nova.verifier import service as verifier_service
    return verifier_service.make_verifier(CONF).attestor


def _manager_api():
    """The vTPM managers' client, signing challenges with the verifier's
    key ([korora] verifier_signing_key): korora-manage runs on the
    control plane, beside the verifier."""
    from korora_nova.rpcapi import vtpm_manager as rpcapi

    return rpcapi.VTPMManagerAPI()


def host_enroll(args):
    from korora_nova.verifier import admin
    host = admin.enroll(_manager_api(), args.host_name, args.policy,
                        args.trust_on_first_use)
    print('%s enrolled: EK %s (certificate sha256 %s), AK %s, policy %s%s'
          % (host.name, host.ek_type, host.ek_certificate_sha256,
             host.ak_name, host.policy_name or 'none',
             ' (trust on first use)' if host.trust_on_first_use else ''))
    return EXIT_OK


def host_list(args):
    from korora_nova.db import api as db
    trust = db.host_trust_all()
    print('%-30s %-10s %-25s %s' % ('HOST', 'TRUST', 'VERIFIED AT',
                                    'POLICY'))
    for host in db.host_list():
        state = _trust_word(trust.get(host.name))
        verified = trust[host.name][2].isoformat(
            timespec='seconds') if host.name in trust else '-'
        print('%-30s %-10s %-25s %s' % (host.name, state, verified,
                                        host.policy_name or '-'))
    return EXIT_OK


def _trust_word(entry):
    """trusted / untrusted / stale (older than trust_ttl) / unknown."""
    from korora_nova.attestation import freshness
    from korora_nova.db import api as db
    return freshness.state(entry, freshness.cutoff(db.utcnow(),
                                                   CONF.korora.trust_ttl))


def host_show(args):
    from korora_nova.db import api as db
    host = db.host_get(args.host_name)
    trust = db.host_trust_all().get(host.name)
    print('host:                %s' % host.name)
    print('trust:               %s' % _trust_word(trust))
    if trust:
        print('last verdict:        %s (%s)' % (
            trust[1], trust[2].isoformat(timespec='seconds')))
    print('policy:              %s' % (host.policy_name or 'none'))
    print('EK:                  %s, certificate sha256 %s%s' % (
        host.ek_type, host.ek_certificate_sha256,
        ' (trust on first use)' if host.trust_on_first_use else ''))
    print('AK name:             %s' % host.ak_name)
    print('enrolled at:         %s' % host.enrolled_at.isoformat(
        timespec='seconds'))
    print('recent verdicts:')
    for row in db.verdicts_for_host(host.name, args.verdicts):
        print('  %s  %s' % (row.created_at.isoformat(timespec='seconds'),
                            row.summary))
    return EXIT_OK


def host_remove(args):
    from korora_nova.verifier import admin
    admin.remove(args.host_name)
    print('%s removed' % args.host_name)
    return EXIT_OK


def host_attest(args):
    verdict = _attestor().attest(args.host_name)
    print(verdict.summary())
    return EXIT_OK if verdict.trusted else EXIT_NEGATIVE


def host_set_policy(args):
    from korora_nova.verifier import admin
    admin.set_policy(args.host_name, args.policy)
    print('%s now judged by policy %s' % (args.host_name, args.policy))
    return EXIT_OK


# policy

def _signing_key(path):
    """The operator's private key; a bad file is a usage error."""
    try:
        return policy_module.load_signing_key(path)
    except exception.SigningKeyError as error:
        raise exception.UsageError('--signing-key: %s' % error)


def policy_import(args):
    from korora_nova.verifier import admin
    key = _signing_key(args.signing_key)
    reference = policy_module.load(args.file)
    admin.import_policy(reference, policy_module.sign(reference, key),
                        active=not args.inactive)
    print('policy %s imported (%d PCRs, %s), signed by key %s' % (
        reference.label, len(reference.allowed),
        'inactive' if args.inactive else 'active',
        policy_module.key_id(key.public_key())))
    return EXIT_OK


def policy_sign(args):
    """The operator's signature of a policy file, for an import made
    elsewhere (Horizon's Import policy form): the private key stays on
    this machine; no database, no bus."""
    key = _signing_key(args.signing_key)
    reference = policy_module.load(args.file)
    print(policy_module.sign(reference, key))
    return EXIT_OK


def policy_record(args):
    from korora_nova.verifier import attestation
    key = _signing_key(args.signing_key)
    reference = attestation.record_policy(_manager_api(),
                                          args.host_name, args.policy_name,
                                          args.version, key)
    print('policy %s recorded from %s (%d PCRs, active), signed by key %s'
          % (reference.label, args.host_name, len(reference.allowed),
             policy_module.key_id(key.public_key())))
    return EXIT_OK


def _signed_word(row, keys):
    """yes, or NO with the reason appraisal ignores the version."""
    try:
        policy_module.verified(row.name, row.version, row.document,
                               row.signature, keys)
    except exception.PolicyError:
        return 'NO'
    return 'yes'


def policy_list(args):
    from korora_nova.db import api as db
    try:
        keys = policy_module.trusted_keys(CONF.korora.policy_signing_keys)
    except exception.SigningKeyError as error:
        LOG.error('%s', error)
        keys = {}
    print('%-30s %-8s %-8s %-8s %s' % ('NAME', 'VERSION', 'ACTIVE',
                                       'SIGNED', 'IMPORTED'))
    for row in db.policy_list():
        print('%-30s %-8d %-8s %-8s %s' % (
            row.name, row.version, 'yes' if row.active else 'no',
            _signed_word(row, keys),
            row.created_at.isoformat(timespec='seconds')))
    return EXIT_OK


def policy_show(args):
    from korora_nova.db import api as db
    row = db.policy_get(args.policy_name, args.version)
    print(json.dumps(json.loads(row.document), indent=2, sort_keys=True))
    return EXIT_OK


def policy_activate(args):
    from korora_nova.verifier import admin
    admin.set_active(args.policy_name, args.version, True)
    print('policy %s v%d active' % (args.policy_name, args.version))
    return EXIT_OK


def policy_deactivate(args):
    from korora_nova.verifier import admin
    admin.set_active(args.policy_name, args.version, False)
    print('policy %s v%d inactive' % (args.policy_name, args.version))
    return EXIT_OK


# audit

def _expected_head(text):
    seq, _, entry_hash = text.partition(':')
    try:
        seq = int(seq)
        bytes.fromhex(entry_hash)
    except ValueError:
        seq = None
    if seq is None or seq < 1 or len(entry_hash) != 64:
        raise exception.UsageError(
            '--head %r is not SEQ:HASH (the seq and the 64 '
            'hex digits "audit anchor" printed)' % text)
    return seq, entry_hash.lower()


def audit_verify(args):
    from korora_nova.migration import audit
    report = audit.verify(_expected_head(args.head) if args.head else None)
    for line in report.summary():
        print(line)
    return EXIT_OK if report.ok else EXIT_NEGATIVE


def audit_anchor(args):
    from korora_nova.migration import audit
    row = audit.anchor(_manager_api(), args.host_name)
    # anchor() verified the log and its anchors: this is what the TPM
    # signed (under the anchor purpose).
    signed = audit.entry_hash(row.seq)
    print('audit log anchored at seq %d (entry hash %s) by %s\'s TPM at %s'
          % (row.seq, signed, row.host,
             row.created_at.isoformat(timespec='seconds')))
    print('keep "%d:%s" outside the database; "audit verify --head" '
          'checks it' % (row.seq, signed))
    return EXIT_OK


# migration

def _time(value):
    return value.isoformat(timespec='seconds') if value else '-'


def migration_list(args):
    from korora_nova.migration import records
    print('%-36s %-36s %-33s %-14s %s' % (
        'UUID', 'INSTANCE', 'SOURCE -> DEST', 'STATE', 'UPDATED'))
    for row in records.list(args.limit):
        print('%-36s %-36s %-33s %-14s %s' % (
            row.uuid, row.instance_uuid,
            '%s -> %s' % (row.source_host, row.dest_host), row.state,
            _time(row.updated_at)))
    return EXIT_OK


def migration_show(args):
    from korora_nova.db import audit_log
    from korora_nova.migration import records
    from korora_nova.migration import states
    try:
        row = records.get(args.migration_uuid)
    except exception.MigrationNotFound as error:
        raise exception.UsageError(str(error))
    if states.is_final(row.state):
        where = 'final'
    else:
        where = 'in flight; recovery: %s' % states.RESUME[row.state]
    print('migration:      %s' % row.uuid)
    print('instance:       %s' % row.instance_uuid)
    print('source -> dest: %s -> %s' % (row.source_host, row.dest_host))
    print('state:          %s (%s)' % (row.state, where))
    print('reason:         %s' % (row.reason or '-'))
    print('created at:     %s' % _time(row.created_at))
    print('updated at:     %s' % _time(row.updated_at))
    entries = records.history(row.uuid)
    print('states:')
    for entry in entries:
        if entry.to_state:
            print('  %s  %-14s by %s (%s)' % (_time(entry.created_at),
                                              entry.to_state, entry.host,
                                              entry.step))
    _print_manifest(row)
    print('audit entries:')
    for entry in entries:
        intact = audit_log.hash_of(entry) == entry.entry_hash
        check = 'intact' if intact else (
            'CHANGED: its content does not match its hash')
        print('  seq %d  %s  %s  %s  %s -> %s  %s' % (
            entry.seq, _time(entry.created_at), entry.host, entry.step,
            entry.from_state or '-', entry.to_state or '-', check))
        print('    hash %s' % entry.entry_hash)
        print('    details %s' % entry.details)
    return EXIT_OK


def _print_manifest(row):
    """The source's integrity manifest and whether its signature holds."""
    from korora_nova.migration import records

    print('integrity manifest:')
    manifest, problem = records.checked_manifest(row)
    if problem is not None:
        print('  INVALID: %s' % problem)
        return
    if manifest is None:
        print('  none (the source measures when the transfer ends)')
        return
    print('  signed by %s\'s TPM, counter %d: signature valid'
          % (manifest.source_host, manifest.counter))
    for name, digest in manifest.items.items():
        print('  %-16s sha256:%s' % (name, digest))


# signing-key

# Where each kind of signing key's public half must be listed.
KEY_USERS = {
    'verifier': 'pin %s on every host as [korora] verifier_public_keys',
    'api': 'list %s in the verifier\'s [korora] api_public_keys (it obeys '
           'only the korora-api writes signed by a key listed there)',
}


def signing_key_create(args):
    """Create a signing key (the verifier's, or korora-api's with --for
    api) and write its public half where the operator says."""
    from korora_nova.attestation import results

    path = args.path or CONF.korora.verifier_signing_key
    key = results.generate_signing_key(path)
    results.write_public_key(key, args.public)
    print('signing key %s (key id %s); %s'
          % (path, key.kid, KEY_USERS[args.key_for] % args.public))
    return EXIT_OK


# libvirt-hook

def _print_outcomes(outcomes):
    for outcome in outcomes:
        print('%s: %s' % (outcome.path, outcome.state))
    if any(outcome.changed for outcome in outcomes):
        print(hook_install.RESTART_NOTE)


def libvirt_hook_install(args):
    outcomes = hook_install.install(CONF.korora.libvirt_hook_socket,
                                    CONF.korora.libvirt_hook_timeout,
                                    args.hooks_dir, args.hypervisor,
                                    force=args.force)
    if not any(outcome.changed for outcome in outcomes):
        print('nothing to do: the hook is installed and current')
    _print_outcomes(outcomes)
    return EXIT_OK


def libvirt_hook_remove(args):
    outcomes = hook_install.remove(args.hooks_dir, args.hypervisor)
    if not any(outcome.changed for outcome in outcomes):
        print('nothing to do: no hook of korora-nova is installed')
    _print_outcomes(outcomes)
    return EXIT_OK


def libvirt_hook_status(args):
    outcomes = hook_install.status(CONF.korora.libvirt_hook_socket,
                                   CONF.korora.libvirt_hook_timeout,
                                   args.hooks_dir, args.hypervisor)
    for outcome in outcomes:
        print('%s: %s' % (outcome.path, outcome.state))
    current = all(outcome.state == hook_install.CURRENT
                  for outcome in outcomes)
    return EXIT_OK if current else EXIT_NEGATIVE


def server_migrate(args):
    from korora_nova.direct_migration import this_host

    outcome = this_host.migrate(CONF, args.domain, args.to, args.live)
    if outcome.state == 'COMMITTED':
        print('%s moved to %s: migration %s committed'
              % (outcome.domain, args.to, outcome.migration_uuid))
        return EXIT_OK
    print('%s not moved: %s on %s (migration %s): %s; its stopped '
          'definition stays on %s' % (
              outcome.domain, outcome.state.lower(), args.to,
              outcome.migration_uuid, outcome.reason, CONF.host))
    return EXIT_NEGATIVE


def server_receive(args):
    from korora_nova.direct_migration import this_host

    # stdout is the pipe to the source: nothing else may be printed.
    this_host.receive(CONF, sys.stdin.buffer, sys.stdout.buffer)
    return EXIT_OK


def server_ssh_gate(args):
    from korora_nova.direct_migration import ssh_gate

    ssh_gate.check(os.environ.get('SSH_ORIGINAL_COMMAND'))
    return server_receive(args)


def _add(actions, name, function, help_text, *arguments):
    parser = actions.add_parser(name, help=help_text)
    for argument in arguments:
        flags, options = argument
        parser.add_argument(*flags, **options)
    parser.set_defaults(action_fn=function)
    return parser


def _category(subparsers, name, help_text):
    parser = subparsers.add_parser(name, help=help_text)
    actions = parser.add_subparsers(dest='action')
    actions.required = True
    return actions


# Not "name": oslo.config's sub-command namespace uses that for the
# category chosen.
POLICY_NAME = (('policy_name',), {'metavar': 'NAME', 'help': 'Policy name.'})
HOST = (('host_name',),
        {'metavar': 'HOST',
         'help': 'Nova compute host name ([DEFAULT] host).'})

SIGNING_KEY = (('--signing-key',),
               {'required': True, 'metavar': 'OPERATOR_KEY.pem',
                'help': 'The operator\'s EC P-256 private key (PEM, '
                        'unencrypted). The verifier trusts a policy only '
                        'when its public key is listed in [korora] '
                        'policy_signing_keys.'})

HOOKS_DIR = (('--hooks-dir',),
             {'default': hook_install.DEFAULT_HOOKS_DIR, 'metavar': 'DIR',
              'help': 'libvirt\'s hooks folder (default %s).'
                      % hook_install.DEFAULT_HOOKS_DIR})
HYPERVISOR = (('--hypervisor',),
              {'choices': hook_install.HYPERVISORS, 'default': 'all',
               'help': 'qemu (qemu.d), libxl (libxl.d) or all (default).'})


def add_command_parsers(subparsers):
    actions = _category(subparsers, 'db', 'The verifier\'s database.')
    _add(actions, 'sync', db_sync, 'Create or upgrade the schema.')
    _add(actions, 'version', db_version, 'Print the schema revision.')

    actions = _category(subparsers, 'host', 'Enrolled compute hosts.')
    _add(actions, 'enroll', host_enroll,
         'Enroll a host: check its EK certificate chain against [korora] '
         'ek_ca_bundle and bind its AK by credential activation.', HOST,
         (('--policy',), {'help': 'Reference policy judging the host.'}),
         (('--trust-on-first-use',),
          {'action': 'store_true',
           'help': 'Accept an EK certificate that does not chain to the '
                   'CA bundle (logged).'}))
    _add(actions, 'list', host_list, 'List hosts and their trust.')
    _add(actions, 'show', host_show, 'Show a host and recent verdicts.',
         HOST, (('--verdicts',), {'type': int, 'default': 10,
                                  'help': 'How many verdicts to show.'}))
    _add(actions, 'remove', host_remove, 'Forget an enrolled host.', HOST)
    _add(actions, 'attest', host_attest,
         'Attest a host now; exit 1 if it is untrusted.', HOST)
    _add(actions, 'set-policy', host_set_policy,
         'Judge a host by another policy.', HOST,
         (('policy',), {'help': 'Policy name.'}))

    actions = _category(subparsers, 'policy', 'Reference policies.')
    _add(actions, 'import', policy_import,
         'Import a policy file (JSON), signed with the operator\'s key.',
         (('file',), {'help': 'Policy file.'}), SIGNING_KEY,
         (('--inactive',), {'action': 'store_true',
                            'help': 'Import without activating it.'}))
    _add(actions, 'sign', policy_sign,
         'Print the operator\'s signature of a policy file (JSON), to '
         'import it elsewhere (Horizon) without the key.',
         (('file',), {'help': 'Policy file.'}), SIGNING_KEY)
    _add(actions, 'record', policy_record,
         'Record the PCR values a known-good enrolled host quotes now as '
         'a new active policy, signed with the operator\'s key.', HOST,
         POLICY_NAME, SIGNING_KEY,
         (('--version',), {'type': int, 'default': 1,
                           'help': 'Policy version (default 1).'}))
    _add(actions, 'list', policy_list, 'List policies and versions.')
    _add(actions, 'show', policy_show, 'Print a policy.',
         POLICY_NAME, (('--version',), {'type': int}))
    _add(actions, 'activate', policy_activate,
         'Accept hosts that match this version.',
         POLICY_NAME, (('version',), {'type': int}))
    _add(actions, 'deactivate', policy_deactivate,
         'Stop accepting hosts that match only this version.',
         POLICY_NAME, (('version',), {'type': int}))

    actions = _category(subparsers, 'audit',
                        'The audit log of migration steps and of what '
                        'decides trust.')
    _add(actions, 'verify', audit_verify,
         'Check the whole hash chain and its TPM anchors, and that every '
         'host, policy, verdict and host trust row is the one the log '
         'recorded and every policy is signed; exit 1 if not.',
         (('--head',),
          {'metavar': 'SEQ:HASH',
           'help': 'A head "audit anchor" printed earlier and kept outside '
                   'the database: the log must still hold it.'}))
    _add(actions, 'anchor', audit_anchor,
         'Have a host\'s TPM sign the head of the audit log now.', HOST)

    actions = _category(subparsers, 'migration',
                        'Live migrations and their states.')
    _add(actions, 'list', migration_list,
         'List migrations, the most recently changed first.',
         (('--limit',), {'type': int,
                         'help': 'Show at most this many.'}))
    _add(actions, 'show', migration_show,
         'Show a migration: its states, checks and audit entries.',
         (('migration_uuid',), {'metavar': 'UUID',
                                'help': 'Migration UUID.'}))

    actions = _category(subparsers, 'server',
                        'Domains on hosts Nova does not manage (Xen '
                        'dom0s), moved by Korora itself.')
    _add(actions, 'migrate', server_migrate,
         'Move a running domain of this host to HOST with Korora\'s '
         'attested migration: mutual attestation, the vTPM secret sealed '
         'to HOST, a signed manifest, the arrival verified there, then '
         'commit; exit 1 if it was refused, quarantined or held.',
         (('domain',), {'metavar': 'DOMAIN',
                        'help': 'Domain name or UUID (libvirt, [korora] '
                                'libvirt_uri).'}),
         (('--to',), {'required': True, 'metavar': 'HOST',
                      'help': 'Destination host ([DEFAULT] host there).'}),
         (('--live',), {'action': 'store_true',
                        'help': 'Live migration (libxl needs a Xen with '
                                'shadow paging for PV guests).'}))
    _add(actions, 'receive', server_receive,
         'The destination\'s half of server migrate, on standard input '
         'and output ([korora_direct_migration] peer_command runs it).')
    _add(actions, 'ssh-gate', server_ssh_gate,
         'The forced command of the peer\'s ssh key (authorized_keys '
         'command="..."): runs server receive if that is what the client '
         'asked for (SSH_ORIGINAL_COMMAND), refuses anything else, such '
         'as the xl migrate-receive of a plain xl migrate.')

    actions = _category(subparsers, 'signing-key',
                        'The verifier\'s key for signed answers, or '
                        'korora-api\'s for its writes.')
    _add(actions, 'create', signing_key_create,
         'Create an EC P-256 signing key (mode 0600; an '
         'existing file is never overwritten) and its public key.',
         (('--path',), {'help': 'Where the private key goes (default '
                                '[korora] verifier_signing_key).'}),
         (('--public',), {'required': True,
                          'help': 'Where the public key goes (PEM).'}),
         (('--for',), {'dest': 'key_for', 'choices': sorted(KEY_USERS),
                       'default': 'verifier',
                       'help': 'Whose key: the verifier\'s (default) or '
                               'korora-api\'s; says where its public key '
                               'must be listed.'}))

    actions = _category(subparsers, 'libvirt-hook',
                        'korora-libvirt-hook in libvirt\'s hooks folders '
                        '(qemu.d/korora, libxl.d/korora).')
    _add(actions, 'install', libvirt_hook_install,
         'Install or update the hook (it asks korora-vtpm-manager on '
         '[korora] libvirt_hook_socket, waiting [korora] '
         'libvirt_hook_timeout); a current one is left alone.',
         HOOKS_DIR, HYPERVISOR,
         (('--force',),
          {'action': 'store_true',
           'help': 'Replace a "korora" file korora-nova did not write.'}))
    _add(actions, 'remove', libvirt_hook_remove,
         'Remove the hook korora-nova installed; other files stay.',
         HOOKS_DIR, HYPERVISOR)
    _add(actions, 'status', libvirt_hook_status,
         'Say, for each folder, whether the hook is installed and current '
         '(as install with the same options would write it); exit 1 if '
         'not.', HOOKS_DIR, HYPERVISOR)

    evidence_parser = subparsers.add_parser(
        'evidence', help='Judge attestation evidence offline.')
    actions = evidence_parser.add_subparsers(dest='action')
    actions.required = True
    check = actions.add_parser(
        'check',
        help='Check a quote (tpm2_quote -m/-s output) like tpm2_checkquote '
             'does, and appraise it against a reference policy.')
    check.add_argument('--ak-pub', required=True,
                       help='AK public key: PEM (tpm2_createak -f pem), '
                            'DER or a marshalled TPM2B_PUBLIC.')
    check.add_argument('--nonce', required=True,
                       help='The nonce (qualifying data) as hex.')
    check.add_argument('--message', required=True,
                       help='Marshalled TPMS_ATTEST (tpm2_quote -m).')
    check.add_argument('--signature', required=True,
                       help='Marshalled TPMT_SIGNATURE (tpm2_quote -s).')
    check.add_argument('--pcr-values',
                       help='PCR values back to back in the quote\'s '
                            'selection order (tpm2_pcrread -o).')
    check.add_argument('--pcrs',
                       help='PCR file as tpm2_quote -o writes it.')
    check.add_argument('--policy',
                       help='Reference policy (JSON) to appraise the PCR '
                            'values against.')
    check.set_defaults(action_fn=evidence_check)


category_opt = cfg.SubCommandOpt('category', title='Command categories',
                                 help='Available categories',
                                 handler=add_command_parsers)


def main(argv=None):
    CONF.register_cli_opt(category_opt)
    conf.register_host_opt(CONF)
    logging.register_options(CONF)
    logging.set_defaults(default_log_levels=logging.get_default_log_levels()
                         + ['alembic=WARN',
                            # A busy database is one line (below).
                            'oslo_db=CRITICAL'])
    # stdout carries the command's answer (JSON for evidence check).
    CONF.set_default('use_stderr', True)
    try:
        CONF(sys.argv[1:] if argv is None else argv, project='korora')
    except cfg.Error as error:
        print('korora-manage: %s' % error, file=sys.stderr)
        return EXIT_USAGE
    logging.setup(CONF, 'korora')
    try:
        return CONF.category.action_fn(CONF.category)
    except exception.UsageError as error:
        print('korora-manage: %s' % error, file=sys.stderr)
        return EXIT_USAGE
    except exception.KororaError as error:
        print('korora-manage: %s' % error, file=sys.stderr)
        return EXIT_USAGE if isinstance(error, USAGE_ERRORS) \
            else EXIT_NEGATIVE
    except db_exception.DBError as error:     # e.g. the server went away
        print('korora-manage: database %s: %s'
              % (_safe_url(CONF.korora_database.connection),
                 error.inner_exception or error), file=sys.stderr)
        return EXIT_NEGATIVE


if __name__ == '__main__':
    sys.exit(main())
