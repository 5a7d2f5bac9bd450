"""The signed-document envelope itself (migration.signed.load) and its
field reader, for each document name."""

from korora_nova import exception
from korora_nova.migration import signed
from fuzz import common

# The fields the product reads with signed.field (manifest, request).
FIELDS = ('migration_uuid', 'instance_uuid', 'source_host', 'dest_host',
          'source_nonce', 'dest_nonce', 'nonce')


def fuzz_one_input(data):
    text = common.text(data)
    for name in ('manifest', 'request'):
        loaded = common.answer(signed.load, text, name, 64 * 1024,
                               exception.ManifestError, 'document')
        if loaded is not None:
            document, _quote = loaded
            for field in FIELDS:
                common.answer(signed.field, document, field, 255,
                              exception.ManifestError, 'document')
