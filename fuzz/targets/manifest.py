"""A signed integrity manifest or arrival measurement as the verifier
receives it (migration.manifest.load) and its signature check against
the source's swtpm AK (check_signature)."""

from korora_nova.migration import manifest
from fuzz import common


def fuzz_one_input(data):
    loaded = common.answer(manifest.load, common.text(data))
    if loaded is None:
        return
    document, quote = loaded
    document.binding()
    common.answer(manifest.check_signature, document, quote,
                  common.material('ak-ecdsa.pub'), 'compute-1')
