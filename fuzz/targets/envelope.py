"""A sealed vTPM secret as the destination's nova-compute receives it in
migrate_data (hooks.handover.parse), opened with a data key
(open_with), and its duplicate fields for the vTPM manager."""

import hashlib

from korora_nova.hooks import handover
from fuzz import common

_KEY = hashlib.sha256(b'korora fuzz data key').digest()
_BINDING = hashlib.sha256(b'korora fuzz binding').digest()


def fuzz_one_input(data):
    fields = common.answer(handover.parse, common.text(data))
    if fields is None:
        return
    handover.duplicate_fields(fields)
    common.answer(handover.open_with, _KEY, fields, _BINDING)
