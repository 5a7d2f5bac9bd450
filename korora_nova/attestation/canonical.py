"""The one canonical JSON form korora hashes and signs.

Sorted keys, no spaces, ASCII only, no NaN: the same document always
gives the same bytes, so its digest can be signed by a TPM, chained in
the audit log, or bound to a sealed secret. The standard library only,
so that compute-host code can use it without the audit log's database.
"""

import json


def canonical(document):
    return json.dumps(document, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=True, allow_nan=False)
