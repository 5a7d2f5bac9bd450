"""Write the seed corpus from real evidence, made by swtpm.

    python -m fuzz.seeds

A software TPM (korora_nova.demo.services.SoftwareTPMFixture, with EK
certificates from a local CA) makes the AKs, quotes, a key
certification, a signed manifest and request and a sealed envelope with
the product's own code; the verifier and operator keys are made here.
Written: fuzz/material/ (what the targets judge with) and
fuzz/corpus/<target>/ (the seeds); the regression corpus
fuzz/regressions/<target>/ starts as a copy of them. Run again only
together with a new material/: seeds and keys belong together.
"""

import hashlib
import json
import os
import shutil
import struct

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization

from korora_nova.attestation import ek_certificate
from korora_nova.attestation import pcr_values
from korora_nova.attestation import policy
from korora_nova.attestation import purpose
from korora_nova.attestation import results
from korora_nova.attestation import verdict
from korora_nova.demo import services
from korora_nova.hooks import handover
from korora_nova.hypervisors import base
from korora_nova.hypervisors import file_backend
from korora_nova.libvirt_hook import client
from korora_nova.migration import manifest
from korora_nova.migration import request
from korora_nova import rpc
from korora_nova.tpm import certify
from korora_nova.tpm import quote as tpm_quote
from korora_nova.vtpm_manager import hook_server
from fuzz import common

SELECTION = [('sha256', i) for i in (0, 1, 2, 3, 7, 10)]
AK_HANDLES = {'ecdsa-p256-sha256': 0x81010030,
              'rsassa-2048-sha256': 0x81010031,
              'rsapss-2048-sha256': 0x81010032}
SOURCE, DEST = 'compute-1', 'compute-2'
MIGRATION = '2f9c1d7e-4b4a-4d8e-9a51-6c3b2e1f0a11'
INSTANCE = '7b1e0c3a-9d2f-4e5b-8a6c-1f0e2d3c4b5a'


def _pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _tools_serialized(selection, values):
    """tpm2_quote -o's layout (see pcr_values.from_tools_serialized)."""
    banks = []
    for bank, index in selection:
        if bank not in [b for b, _ in banks]:
            banks.append((bank, 0))
        banks = [(b, m | (1 << index) if b == bank else m)
                 for b, m in banks]
    out = struct.pack('<I', len(banks))
    for bank, mask in banks:
        out += struct.pack('<HB4sx', pcr_values.BANK_IDS[bank], 3,
                           mask.to_bytes(4, 'little'))
    out += b'\0' * (pcr_values._SELECTION_SIZE - len(out))
    digests = [values[bank][index] for bank, index in selection]
    lists = [digests[i:i + 8] for i in range(0, len(digests), 8)]
    out += struct.pack('<I', len(lists))
    for chunk in lists:
        out += struct.pack('<I', len(chunk))
        for digest in chunk:
            out += struct.pack('<H64s', len(digest), digest)
        out += b'\0' * ((8 - len(chunk)) * pcr_values._DIGEST_ENTRY.size)
    return out


def _quote_json(quote):
    return json.dumps({'message': rpc.encode(quote.message),
                       'signature': rpc.encode(quote.signature),
                       'pcr_values': pcr_values.to_json(quote.pcr_values)},
                      sort_keys=True).encode('ascii')


def make(tpm):
    """{target: [seed bytes]} and {material file: bytes}."""
    seeds, material = {}, {}
    aks = {name: tpm.attestation_key(name, handle)
           for name, handle in AK_HANDLES.items()}
    for name, file_name in zip(AK_HANDLES, ('ak-ecdsa.pub', 'ak-rsassa.pub',
                                            'ak-rsapss.pub')):
        material[file_name] = aks[name].public
    ak = aks['ecdsa-p256-sha256']
    quote_nonce = os.urandom(32)
    quotes = [tpm_quote.quote(tpm.connection, aks[name], SELECTION,
                              quote_nonce) for name in AK_HANDLES]
    certify_nonce = os.urandom(32)
    certified = certify.create_certified_storage_key(tpm.connection, ak,
                                                     certify_nonce)
    endorsed = tpm.endorsement()
    with open(tpm.ca_bundle, 'rb') as stream:
        material['ek-ca.pem'] = stream.read()
    material['ek-certificate.der'] = endorsed.certificate
    verifier_key = ec.generate_private_key(ec.SECP256R1())
    policy_key = ec.generate_private_key(ec.SECP256R1())
    material['verifier-key.pem'] = _pem_private(verifier_key)
    material['policy-key.pem'] = _pem_private(policy_key)
    signer = results.SigningKey(verifier_key)

    values = quotes[0].pcr_values
    seeds['attestation'] = [q.message for q in quotes] + [
        certified.attestation]
    seeds['signature'] = [q.signature for q in quotes] + [
        certified.signature]
    seeds['public_area'] = [a.public for a in aks.values()] + [
        certified.public, endorsed.public]
    seeds['appraise_quote'] = [
        common.join(bytes([n]), q.message, q.signature,
                    json.dumps(pcr_values.to_json(q.pcr_values)).encode())
        for n, q in enumerate(quotes)]
    seeds['appraise_certification'] = [common.join(
        certified.attestation, certified.signature, certified.public)]
    seeds['pcr_files'] = [
        _tools_serialized(SELECTION, values),
        b''.join(values[bank][index] for bank, index in SELECTION),
        b'sha256:0,1,2,3,7,10+sha384:0']
    seeds['pcr_json'] = [json.dumps(pcr_values.to_json(values)).encode()]
    reference = policy.from_values('compute', 1, values)
    document = json.dumps(reference.to_json(), sort_keys=True)
    seeds['policy'] = [document.encode(), json.dumps(
        {'name': 'any-of', 'version': 2, 'pcrs': {'sha256': {
            '0': ['00' * 32, 'ff' * 32]}}}).encode()]
    signature = policy.sign(reference, policy_key)
    seeds['signed_policy'] = [
        b'\0' + common.join(signature.encode(), document.encode()),
        b'\1' + common.join(b'', policy.canonical_payload(reference))]
    seeds['ek_certificate'] = [endorsed.certificate,
                               ek_certificate.load_certificate(
                                   endorsed.certificate).public_bytes(
                                       serialization.Encoding.PEM)]
    seeds['ca_bundle'] = [material['ek-ca.pem']]
    seeds['key_files'] = [material['verifier-key.pem'],
                          material['policy-key.pem'],
                          signer.public_pem()]
    seeds['enrollment'] = [common.join(endorsed.certificate, endorsed.public,
                                       ak.public)]

    def token(kind, claims):
        return signer.sign(kind, SOURCE, 3600, claims).encode('ascii')

    migration = {'uuid': MIGRATION, 'instance_uuid': INSTANCE,
                 'source_host': SOURCE, 'dest_host': SOURCE}
    seeds['results_token'] = [
        token(results.RESULT, results.verdict_claims(
            _trusted(), quote_nonce)),
        token(results.CHALLENGE, {'eat_nonce': results.nonce_claim(
            quote_nonce), 'korora.purpose': 'attest'})]
    seeds['signed_claims'] = [
        bytes([1]) + json.dumps({'eat_nonce': results.nonce_claim(
            quote_nonce), 'korora.purpose': 'attest'}).encode(),
        bytes([1]) + json.dumps({'korora.purpose': results.ENROLL}).encode(),
        bytes([2]) + json.dumps({
            'korora.action': results.COMMIT, 'korora.role': 'source',
            'korora.migration': migration, 'eat_nonce': 'bm9uY2U'}).encode(),
        bytes([0]) + json.dumps(results.verdict_claims(
            _trusted(), quote_nonce)).encode()]

    items = base.Measurement({'vtpm-state': 'ab' * 32, 'nvram': 'cd' * 32})
    departure = manifest.Manifest(MIGRATION, INSTANCE, SOURCE, DEST,
                                  'aa' * 32, 'bb' * 32, 7, items)
    signed_manifest = manifest.signed_text(departure, tpm_quote.quote(
        tpm.connection, ak, SELECTION, departure.qualifying_data()))
    seeds['manifest'] = [signed_manifest.encode()]
    asked = request.new(INSTANCE, SOURCE, DEST)
    signed_request = request.signed_text(asked, tpm_quote.quote(
        tpm.connection, ak, SELECTION, asked.qualifying_data()))
    seeds['request'] = [signed_request.encode()]
    seeds['signed_document'] = [signed_manifest.encode(),
                                signed_request.encode()]
    bound = hashlib.sha256(b'korora fuzz binding').digest()
    envelope = handover.seal_secret(certified, 'the vTPM secret', bound)
    seeds['envelope'] = [envelope.encode('ascii')]

    domains = [
        file_backend.make_domain_xml(INSTANCE, secret_uuid=INSTANCE,
                                     secure_boot=True, nvram=True,
                                     disks=['vda']),
        file_backend.make_domain_xml(INSTANCE, tpm_backend=None),
        file_backend.make_domain_xml(INSTANCE, domain_type='xen',
                                     tpm_backend='passthrough')]
    seeds['domain_xml'] = [d.encode() for d in domains] + [
        b"vtpm = ['backend=vtpm-1,uuid=%s']\n" % INSTANCE.encode()]
    seeds['hook_socket'] = [
        common.join(client.request_header('instance-1') + domains[0].encode(),
                    b'PASS instance admitted\n'),
        common.join(client.request_header('instance-2') + domains[1].encode(),
                    b'REFUSE no approved migration\n'),
        common.join(hook_server.LOCAL_PROTOCOL + b' open_transfer\n{}',
                    json.dumps({'result': 'a2V5'}).encode()),
        common.join(b'', json.dumps({'error': 'refused', 'item': 'nvram'}
                                    ).encode())]

    seeds['verifier_rpc'] = [
        json.dumps(rpc.encode(quote_nonce)).encode(),
        json.dumps({'ek_type': 'EK-RSA2048',
                    'ek_certificate': rpc.encode(endorsed.certificate),
                    'ek_public': rpc.encode(endorsed.public),
                    'ak_public': rpc.encode(ak.public)}).encode(),
        _quote_json(quotes[0]),
        json.dumps({'public': rpc.encode(certified.public),
                    'attestation': rpc.encode(certified.attestation),
                    'signature': rpc.encode(certified.signature),
                    'unique': rpc.encode(certified.unique),
                    'secret': rpc.encode(os.urandom(32))}).encode()]
    fields = handover.parse(envelope)
    seeds['bus_fields'] = [json.dumps(value).encode() for value in
                           handover.duplicate_fields(fields).values()]

    material['facts.json'] = json.dumps({
        'quote_nonce': quote_nonce.hex(),
        'certify_nonce': certify_nonce.hex(),
        'selection': SELECTION,
        'pcr_values': pcr_values.to_json(values),
        'instance_uuid': INSTANCE,
        'requested_at': asked.requested_at,
        'attestation_purpose': purpose.name(purpose.ATTEST),
    }, indent=1, sort_keys=True).encode()
    return seeds, material


def _trusted():
    return verdict.Verdict(True, True, (), SOURCE, 'compute v1')


def seed_name(data):
    return 'seed-' + hashlib.sha256(data).hexdigest()[:16]


def write(seeds, material, root=common.HERE):
    folder = os.path.join(root, 'material')
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in material.items():
        with open(os.path.join(folder, name), 'wb') as stream:
            stream.write(data)
    for kind in ('corpus', 'regressions'):
        for target, found in seeds.items():
            folder = os.path.join(root, kind, target)
            os.makedirs(folder, exist_ok=True)
            for name in os.listdir(folder):
                if name.startswith('seed-'):
                    os.unlink(os.path.join(folder, name))
            for data in found:
                with open(os.path.join(folder, seed_name(data)),
                          'wb') as stream:
                    stream.write(data)


def main():
    tpm = services.SoftwareTPMFixture()
    tpm.setUp()
    try:
        seeds, material = make(tpm)
    finally:
        tpm.cleanUp()
    write(seeds, material)
    for target, found in sorted(seeds.items()):
        print('%-24s %2d seeds, %6d bytes' % (
            target, len(found), sum(len(d) for d in found)))


if __name__ == '__main__':
    main()
