"""korora-manage: the operator's command line.

Exit codes: 0 success (for "evidence check": the evidence is valid, and
trusted when a policy was given), 1 a negative answer (untrusted
evidence), 2 a usage error (a missing or unreadable file, a bad option).
"""

import json
import sys

from oslo_config import cfg
from oslo_log import log as logging

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy as policy_module
from korora_nova.attestation import verdict as verdict_module
from korora_nova import conf
from korora_nova import exception

CONF = conf.CONF
LOG = logging.getLogger(__name__)

EXIT_OK, EXIT_NEGATIVE, EXIT_USAGE = 0, 1, 2
MAX_INPUT_FILE = 64 * 1024


class UsageError(exception.KororaError):
    """A command line the command cannot act on."""


def read_file(path, what, limit=MAX_INPUT_FILE):
    """Read at most limit bytes; a larger file is refused, not truncated."""
    try:
        with open(path, 'rb') as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        raise UsageError('cannot read %s %s: %s'
                         % (what, path, error.strerror))
    if len(data) > limit:
        raise UsageError('%s %s is larger than %d bytes'
                         % (what, path, limit))
    return data


def _pcr_values_for(args, message):
    """The PCR values, from --pcr-values or --pcrs; None if unusable."""
    if args.pcrs:
        data = read_file(args.pcrs, 'PCR file',
                         pcr_values.MAX_TOOLS_PCR_FILE)
        _, values = pcr_values.from_tools_serialized(data)
        return values
    data = read_file(args.pcr_values, 'PCR values file')
    # Back-to-back values are in the quote's selection order: the quote
    # says which PCRs they are.
    selection = evidence.parse_attestation(message).pcr_selection
    return pcr_values.from_back_to_back(data, list(selection))


def evidence_check(args):
    """Judge a quote made by tpm2_quote (or by korora) and print JSON."""
    if bool(args.pcr_values) == bool(args.pcrs):
        raise UsageError('give exactly one of --pcr-values and --pcrs')
    try:
        nonce = bytes.fromhex(args.nonce)
    except ValueError:
        raise UsageError('--nonce %r is not hexadecimal' % args.nonce)
    try:
        ak_key = appraisal.load_public_key(
            read_file(args.ak_pub, 'AK public key'))
    except exception.EvidenceError as error:
        raise UsageError('--ak-pub %s: %s' % (args.ak_pub, error))
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


def add_command_parsers(subparsers):
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
    logging.register_options(CONF)
    try:
        CONF(sys.argv[1:] if argv is None else argv, project='korora')
    except cfg.Error as error:
        print('korora-manage: %s' % error, file=sys.stderr)
        return EXIT_USAGE
    logging.setup(CONF, 'korora')
    try:
        return CONF.category.action_fn(CONF.category)
    except UsageError as error:
        print('korora-manage: %s' % error, file=sys.stderr)
        return EXIT_USAGE
    except exception.KororaError as error:
        print('korora-manage: %s' % error, file=sys.stderr)
        return EXIT_USAGE if isinstance(
            error, (exception.PolicyError, exception.ConfigurationError)) \
            else EXIT_NEGATIVE


if __name__ == '__main__':
    sys.exit(main())
