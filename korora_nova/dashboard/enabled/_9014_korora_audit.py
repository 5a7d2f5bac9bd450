# Admin -> Kororā -> Audit log: verify the hash chain, its head, its TPM
# anchors; anchor it now.
PANEL = 'korora_audit'
PANEL_DASHBOARD = 'admin'
PANEL_GROUP = 'korora'
ADD_PANEL = 'korora_nova.dashboard.audit.panel.AuditLog'
