"""korora-api: the REST API of korora-nova, behind Keystone and policy.

It reads the verifier's database (korora_nova.db.api) and sends every
write to korora-verifier over RPC, signed with its own key
(korora_nova.attestation.admin_request): the verifier stays the only
writer. deploy builds the WSGI application, router maps URLs to the
handlers (one module per resource), schemas and policies hold each
resource's JSON schemas and policy defaults.
"""
