"""The integrity manifest of one migration, and the destination's
measurement on arrival: what each host's TPM signed about the instance.

The source's vTPM manager measures the instance's constrained data items
itself when the transfer has ended (the vTPM state, NVRAM, the domain's
security facts, disks) and signs the manifest with its AK; the
destination's manager measures what arrived and signs that the same
way. Each document is bound to this one migration (instance, migration,
both hosts, both attestation nonces the verifier used, the source's
monotonic counter) and says which of the two it is. Its signature is a
TPM quote whose qualifying data is the document's digest under the
purpose label of its kind (korora_nova.attestation.purpose): a quote for
any other purpose never stands for it. The verifier checks both before
it moves the record.
"""

import dataclasses

from korora_nova.attestation import appraisal
from korora_nova.attestation import evidence
from korora_nova.attestation import purpose
from korora_nova import exception
from korora_nova.hypervisors import base
from korora_nova.migration import signed

VERSION = 2
DEPARTURE = 'departure'     # the source's, when the transfer ended
ARRIVAL = 'arrival'         # the destination's, on arrival
LABELS = {DEPARTURE: purpose.MANIFEST, ARRIVAL: purpose.ARRIVAL}
MAX_DOCUMENT = 64 * 1024
_NONCE_HEX = 2 * evidence.MAX_NONCE_SIZE


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
    kind: str = DEPARTURE

    def document(self):
        return {'version': VERSION,
                'kind': self.kind,
                'migration_uuid': self.migration_uuid,
                'instance_uuid': self.instance_uuid,
                'source_host': self.source_host,
                'dest_host': self.dest_host,
                'source_nonce': self.source_nonce,
                'dest_nonce': self.dest_nonce,
                'counter': self.counter,
                'items': self.items.to_primitive()}

    def digest(self):
        """The SHA-256 of the canonical document."""
        return signed.digest(self.document())

    def qualifying_data(self):
        """What the host's TPM signs: the digest under its kind's label."""
        return purpose.qualifying_data(LABELS[self.kind], self.digest())

    def binding(self):
        """The fields that tie the document to one migration."""
        return (self.migration_uuid, self.instance_uuid, self.source_host,
                self.dest_host, self.source_nonce, self.dest_nonce,
                self.counter)


def for_migration(migration, counter, items, kind):
    """The document for migration (the claims the verifier's
    authorization names: uuid, instance_uuid, source_host, dest_host,
    source_nonce, dest_nonce)."""
    return Manifest(migration['uuid'], migration['instance_uuid'],
                    migration['source_host'], migration['dest_host'],
                    migration['source_nonce'], migration['dest_nonce'],
                    counter, items, kind)


def signed_text(manifest, quote):
    """The document with its TPM quote, as the JSON text that travels to
    the verifier and is kept on the migration record."""
    return signed.text('manifest', manifest.document(), quote)


def load(text):
    """(Manifest, QuoteEvidence) from signed_text()'s text; bounded,
    strict."""
    document, quote = signed.load(
        text, 'manifest', MAX_DOCUMENT,
        exception.ManifestError, 'integrity manifest')
    try:
        version = document.get('version')
        if type(version) is not int or version != VERSION:
            raise exception.ManifestError(
                'integrity manifest version %r is not %d'
                % (version, VERSION))
        kind = document.get('kind')
        if kind not in LABELS:
            raise exception.ManifestError(
                'integrity manifest kind %r is not %s'
                % (kind, ' or '.join(sorted(LABELS))))
        manifest = Manifest(
            _text(document, 'migration_uuid', 36),
            _text(document, 'instance_uuid', 36),
            _text(document, 'source_host', 255),
            _text(document, 'dest_host', 255),
            _text(document, 'source_nonce', _NONCE_HEX),
            _text(document, 'dest_nonce', _NONCE_HEX),
            _counter(document.get('counter')),
            base.Measurement.from_primitive(document['items']), kind)
    except exception.ManifestError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError,
            RecursionError, exception.KororaError) as error:
        raise exception.ManifestError('the integrity manifest is malformed: %s'
                                      % error)
    return manifest, quote


def check_signature(manifest, quote, ak_public, host):
    """Raise ManifestError unless host's AK signed this document for its
    kind's purpose."""
    verdict = appraisal.appraise_quote(
        quote, appraisal.load_public_key(ak_public),
        manifest.qualifying_data(), None, None, host=host)
    if not verdict.evidence_valid:
        raise exception.ManifestError(
            'the %s measurement is not signed by %s\'s '
            'attestation key for that purpose: %s'
            % (manifest.kind, host, verdict.summary()))
    return verdict


def _text(document, name, limit):
    return signed.field(document, name, limit, exception.ManifestError,
                        'manifest')


def _counter(value):
    if not isinstance(value, int) or isinstance(value, bool) or not (
            0 <= value < 2 ** 64):
        raise exception.ManifestError(
            'manifest counter %r is not a 64-bit value'
            % (value,))
    return value
