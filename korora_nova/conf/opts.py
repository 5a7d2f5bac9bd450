"""Entry point for oslo-config-generator (namespace korora_nova)."""

from korora_nova.conf import korora


def list_opts():
    return list(korora.list_opts().items())
