# Admin -> Kororā -> Host trust: every enrolled host's verdict.
PANEL = 'korora_host_trust'
PANEL_DASHBOARD = 'admin'
PANEL_GROUP = 'korora'
ADD_PANEL = 'korora_nova.dashboard.host_trust.panel.HostTrust'
