"""korora-nova: secure live migration of vTPM instances for OpenStack Nova."""
