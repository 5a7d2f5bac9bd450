"""korora-demo: host attestation from end to end, with a software TPM.

A compute host's TPM (swtpm, EK certificate from a local CA) is enrolled
with the verifier (EK certificate chain checked, AK bound to the EK by
credential activation), quoted with a fresh nonce and judged against a
reference policy: once untouched (trusted), once after an unexpected
measurement was extended into a PCR (untrusted, with the reason), and
once replaying an old quote (untrusted).
"""

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile

from korora_nova.attestation import appraisal
from korora_nova.attestation import ek_certificate
from korora_nova.attestation import enrollment
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy as policy_module
from korora_nova import exception
from korora_nova.tpm import attestation_key
from korora_nova.tpm import connection as tpm_connection
from korora_nova.tpm import endorsement
from korora_nova.tpm import quote
from korora_nova.tpm import swtpm

HOST = 'compute-1'
EK_TYPES = ['EK-RSA2048', 'EK-ECC256']
AK_HANDLE = 0x81010020
SELECTION = 'sha256:0,1,2,3,4,5,6,7,10'
MEASURED_PCR = 10


def say(text=''):
    print(text, flush=True)


def step(number, text):
    say()
    say('%d. %s' % (number, text))


def show_verdict(verdict):
    mark = 'TRUSTED' if verdict.trusted else 'UNTRUSTED'
    say('   verdict: %s' % mark)
    for reason in verdict.reasons:
        say('   reason:  %s' % reason)
    return verdict.trusted


class Demo:

    def __init__(self, workdir):
        self.workdir = workdir
        self.selection = pcr_values.parse_selection(SELECTION)

    def run(self):
        say('Kororā host attestation demo (work folder: %s)' % self.workdir)
        step(1, 'Manufacturing %s\'s TPM: swtpm with EK certificates '
             'signed by a local CA' % HOST)
        ca = swtpm.LocalCA(os.path.join(self.workdir, 'ek-ca'))
        tpm = swtpm.SoftwareTPM(os.path.join(self.workdir, HOST), ca)
        tpm.start()
        connection = tpm_connection.TPMConnection(tpm.tcti)
        try:
            return self._attest(ca, tpm, connection)
        finally:
            connection.close()
            tpm.stop()

    def _attest(self, ca, tpm, connection):
        say('   TPM listening at %s' % tpm.tcti)
        ek = endorsement.read_endorsement(connection, EK_TYPES)
        certificate = ek_certificate.load_certificate(ek.certificate)
        say('   EK: %s, certificate issued by %s'
            % (ek.ek_type, certificate.issuer.rfc4514_string()))

        step(2, 'Enrolling %s with the verifier' % HOST)
        bundle = ca.write_bundle(os.path.join(self.workdir,
                                              'ek-ca-bundle.pem'))
        anchors = ek_certificate.load_bundle(bundle)
        ak = attestation_key.AttestationKey(connection, 'ecdsa-p256-sha256',
                                            AK_HANDLE)
        challenge = enrollment.challenge(HOST, ek, ak.public, anchors)
        say('   EK certificate chains to the CA bundle %s' % bundle)
        answer = ak.activate_credential(EK_TYPES, challenge.credential_blob,
                                        challenge.encrypted_secret)
        identity = enrollment.finish(HOST, ek, ak.public, challenge, answer)
        say('   AK %s... proven to live beside the EK (credential '
            'activated)' % identity.ak_name[:24])
        ak_key = appraisal.load_public_key(identity.ak_public_pem)

        step(3, 'The host boots and measures its vTPM manager into PCR %d;'
             ' the operator records the reference policy' % MEASURED_PCR)
        quote.extend_pcr(connection, 'sha256', MEASURED_PCR,
                         b'korora-vtpm-manager 1.0')
        golden = quote.read_pcrs(connection, self.selection)
        reference = policy_module.from_values('compute-2026-11', 1, golden)
        policy_file = os.path.join(self.workdir, 'compute-2026-11.json')
        with open(policy_file, 'w') as stream:
            json.dump(reference.to_json(), stream, indent=2)
        reference = policy_module.load(policy_file)
        say('   policy %s written to %s' % (reference.label, policy_file))

        step(4, 'Attesting the untouched host with a fresh nonce')
        nonce = secrets.token_bytes(32)
        first = quote.quote(connection, ak, self.selection, nonce)
        first_verdict = appraisal.appraise_quote(first, ak_key, nonce,
                                                 reference, host=HOST)
        trusted_first = show_verdict(first_verdict)

        step(5, 'An unexpected measurement lands in PCR %d' % MEASURED_PCR)
        quote.extend_pcr(connection, 'sha256', MEASURED_PCR,
                         b'unexpected kernel module')
        nonce = secrets.token_bytes(32)
        second = quote.quote(connection, ak, self.selection, nonce)
        previous = evidence.parse_attestation(first.message).clock_info
        second_verdict = appraisal.appraise_quote(
            second, ak_key, nonce, reference, previous, host=HOST)
        trusted_second = show_verdict(second_verdict)

        step(6, 'An attacker replays the first (trusted) quote')
        nonce = secrets.token_bytes(32)
        replay_verdict = appraisal.appraise_quote(
            first, ak_key, nonce, reference,
            evidence.parse_attestation(second.message).clock_info,
            host=HOST)
        trusted_replay = show_verdict(replay_verdict)

        ok = trusted_first and not trusted_second and not trusted_replay
        say()
        say('Demo %s: the untouched host is trusted; the changed host and '
            'the replayed quote are not.' % ('passed' if ok else 'FAILED'))
        return 0 if ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='korora-demo', description=__doc__.splitlines()[0])
    parser.add_argument('--workdir',
                        help='Folder for the TPM state, CA and policy '
                             '(default: a temporary folder, removed '
                             'afterwards).')
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix='korora-demo-')
    os.makedirs(workdir, exist_ok=True)
    try:
        return Demo(workdir).run()
    except exception.KororaError as error:
        print('korora-demo: %s' % error, file=sys.stderr)
        return 1
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
