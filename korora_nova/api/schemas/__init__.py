"""JSON schemas of the API's bodies and query strings, one module per
resource (checked by korora_nova.api.util.body and query)."""
