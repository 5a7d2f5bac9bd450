"""The clients of korora's RPC APIs, one module per service.

Built as nova/compute/rpcapi.py builds Nova's: version aliases,
[upgrade_levels] caps, can_send_version, a request context per call.
They live apart from the services they call because each service calls
the other (the verifier challenges the vTPM managers; a manager tells the
verifier its PCRs changed), and a package never imports one that imports
it back.
"""
