"""korora-vtpm-manager: the agent on every compute host that owns the
host TPM (in Xen terms, the dom0 agent beside vtpmmgr)."""
