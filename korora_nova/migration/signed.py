"""A document and the TPM quote that signs it, as one JSON text.

The integrity manifest, the arrival measurement and the migration
request each travel this way, from the vTPM manager that signed them to
the verifier that checks them: ``{name: document, "quote": {message,
signature, pcr_values}}``. The quote's qualifying data is the digest of
the canonical document under the document's purpose label
(korora_nova.attestation.purpose); the module that owns the document
checks that, this one only encodes and parses within bounds.
"""

import hashlib
import json

from korora_nova.attestation import canonical
from korora_nova.attestation import evidence
from korora_nova.attestation import pcr_values
from korora_nova import exception
from korora_nova import rpc


def digest(document):
    """SHA-256 of the canonical document: what its purpose label wraps."""
    return hashlib.sha256(canonical.canonical(document).encode('ascii')
                          ).digest()


def text(name, document, quote):
    """The document under name, with its quote, as JSON text."""
    return json.dumps({
        name: document,
        'quote': {'message': rpc.encode(quote.message),
                  'signature': rpc.encode(quote.signature),
                  'pcr_values': pcr_values.to_json(quote.pcr_values)}},
        sort_keys=True)


def load(signed_text, name, limit, error, what):
    """(document dict, QuoteEvidence) of text(); every failure, size
    first, is error (a KororaError subclass) naming what."""
    if not isinstance(signed_text, str) or not signed_text:
        raise error('no signed %s was sent' % what)
    if len(signed_text) > limit:
        raise error('the %s is larger than %d bytes' % (what, limit))
    try:
        signed = json.loads(signed_text)
        document = signed[name]
        quoted = signed['quote']
        if not isinstance(document, dict):
            raise TypeError('the document is not an object')
        quote = evidence.QuoteEvidence(
            rpc.decode(quoted['message'], '%s quote' % name,
                       evidence.MAX_ATTEST_SIZE),
            rpc.decode(quoted['signature'], '%s signature' % name,
                       evidence.MAX_SIGNATURE_SIZE),
            pcr_values.from_json(quoted['pcr_values']))
    except (ValueError, KeyError, TypeError, AttributeError,
            RecursionError, exception.KororaError) as failure:
        raise error('the %s is malformed: %s' % (what, failure))
    return document, quote


def field(document, name, limit, error, what):
    """document[name]: a string of 1 to limit printable characters (it
    goes into messages), else error naming what document it is."""
    value = document.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit or (
            not value.isprintable()):
        raise error('%s field %s is missing, too long or not printable'
                    % (what, name))
    return value
