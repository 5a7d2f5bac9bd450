"""Step 4: the integrity manifest, signed by the source's TPM.

The manifest lists the digests of the instance's constrained data items
as they were when the transfer ended, bound to this one migration
(instance, migration, both hosts, both attestation nonces, the source's
monotonic counter). The source signs it by quoting with the manifest's
SHA-256 as the nonce: the TPM signs it with the AK the destination has
already checked, and the quote shows the source's PCRs at that moment.
"""

import dataclasses
import hashlib
import json

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova.attestation import purpose
from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.migration import audit
from korora_nova.migration import records
from korora_nova.migration import states
from korora_nova import rpc

VERSION = 1
MAX_DOCUMENT = 64 * 1024
_NONCE_HEX = 2 * evidence.MAX_NONCE_SIZE


class ManifestError(exception.KororaError):
    """A manifest is missing, malformed, unsigned or not for this
    migration."""


@dataclasses.dataclass(frozen=True)
class Manifest:
    migration_uuid: str
    instance_uuid: str
    source_host: str
    dest_host: str
    source_nonce: str       # hex: the source's nonce for the destination
    dest_nonce: str         # hex: the destination's nonce for the source
    counter: int            # the source's monotonic counter
    items: base.Measurement

    def document(self):
        return {'version': VERSION,
                'migration_uuid': self.migration_uuid,
                'instance_uuid': self.instance_uuid,
                'source_host': self.source_host,
                'dest_host': self.dest_host,
                'source_nonce': self.source_nonce,
                'dest_nonce': self.dest_nonce,
                'counter': self.counter,
                'items': self.items.to_primitive()}

    def digest(self):
        """What the source's TPM signs (the quote's qualifying data)."""
        return hashlib.sha256(
            audit.canonical(self.document()).encode('ascii')).digest()


def protocol_nonces(migration_uuid):
    """(source_nonce, dest_nonce), hex, as the audit log recorded them."""
    found = {}
    for entry in records.history(migration_uuid):
        details = json.loads(entry.details)
        for name in ('source_nonce', 'dest_nonce'):
            if name in details:
                found[name] = details[name]
    return found.get('source_nonce'), found.get('dest_nonce')


def measure_and_sign(record, backend, manager_api, vtpm_secret=None,
                     block_migration=False):
    """On the source, once the transfer ended: TRANSFERRING -> MEASURED
    with the signed manifest of the source's copy."""
    items = backend.measure(record.instance_uuid,
                            block_migration=block_migration,
                            vtpm_secret=vtpm_secret)
    counter = manager_api.read_counter(record.source_host)
    source_nonce, dest_nonce = protocol_nonces(record.uuid)
    manifest = Manifest(record.uuid, record.instance_uuid,
                        record.source_host, record.dest_host, source_nonce,
                        dest_nonce, counter, items)
    signed = sign(manager_api, manifest)
    return records.transition(
        record.uuid, record.source_host, states.MEASURED,
        details={'manifest_sha256': manifest.digest().hex(),
                 'items': dict(items), 'counter': counter},
        manifest=signed, source_counter=counter,
        expected=states.TRANSFERRING)


def sign(manager_api, manifest):
    """The manifest with the source TPM's quote over its digest, as the
    JSON text kept on the migration record."""
    quote = manager_api.attest(manifest.source_host, manifest.digest(),
                               purpose_label=purpose.MANIFEST)
    return json.dumps({
        'manifest': manifest.document(),
        'quote': {'message': rpc.encode(quote.message),
                  'signature': rpc.encode(quote.signature),
                  'pcr_values': pcr_values.to_json(quote.pcr_values)}},
        sort_keys=True)


def load(text):
    """(Manifest, QuoteEvidence) from sign()'s text; bounded, strict."""
    if not isinstance(text, str) or not text:
        raise ManifestError('the source signed no integrity manifest')
    if len(text) > MAX_DOCUMENT:
        raise ManifestError('the integrity manifest is larger than %d '
                            'bytes' % MAX_DOCUMENT)
    try:
        signed = json.loads(text)
        document = signed['manifest']
        quoted = signed['quote']
        version = document.get('version')
        if type(version) is not int or version != VERSION:
            raise ManifestError('integrity manifest version %r is not %d'
                                % (version, VERSION))
        manifest = Manifest(
            _text(document, 'migration_uuid', 36),
            _text(document, 'instance_uuid', 36),
            _text(document, 'source_host', 255),
            _text(document, 'dest_host', 255),
            _text(document, 'source_nonce', _NONCE_HEX),
            _text(document, 'dest_nonce', _NONCE_HEX),
            _counter(document.get('counter')),
            base.Measurement.from_primitive(document['items']))
        quote = evidence.QuoteEvidence(
            rpc.decode(quoted['message'], 'manifest quote',
                       evidence.MAX_ATTEST_SIZE),
            rpc.decode(quoted['signature'], 'manifest signature',
                       evidence.MAX_SIGNATURE_SIZE),
            pcr_values.from_json(quoted['pcr_values']))
    except ManifestError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError,
            RecursionError, exception.KororaError) as error:
        raise ManifestError('the integrity manifest is malformed: %s'
                            % error)
    return manifest, quote


def check_signature(manifest, quote, source_ak_public):
    """Raise ManifestError unless the source's AK signed this manifest."""
    verdict = appraisal.appraise_quote(
        quote, appraisal.load_public_key(source_ak_public),
        purpose.qualifying_data(purpose.MANIFEST, manifest.digest()), None,
        None, host=manifest.source_host)
    if not verdict.evidence_valid:
        raise ManifestError('the integrity manifest is not signed by %s\'s '
                            'attestation key: %s'
                            % (manifest.source_host, verdict.summary()))
    return verdict


def _text(document, name, limit):
    value = document.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ManifestError('manifest field %s is missing or too long'
                            % name)
    return value


def _counter(value):
    if not isinstance(value, int) or isinstance(value, bool) or not (
            0 <= value < 2 ** 64):
        raise ManifestError('manifest counter %r is not a 64-bit value'
                            % (value,))
    return value
