# Admin -> Kororā -> Reference policies: import (operator-signed),
# activate, deactivate.
PANEL = 'korora_policies'
PANEL_DASHBOARD = 'admin'
PANEL_GROUP = 'korora'
ADD_PANEL = 'korora_nova.dashboard.policies.panel.ReferencePolicies'
