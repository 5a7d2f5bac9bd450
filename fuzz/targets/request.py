"""A destination's signed migration request as the verifier receives it
(migration.request.load, check)."""

from korora_nova.migration import request
from fuzz import common


def fuzz_one_input(data):
    loaded = common.answer(request.load, common.text(data))
    if loaded is None:
        return
    document, _quote = loaded
    document.migration_uuid()
    document.qualifying_data()
    facts = common.facts()
    common.answer(request.check, document, facts['instance_uuid'],
                  'compute-1', 'compute-2', 60, now=facts['requested_at'])
