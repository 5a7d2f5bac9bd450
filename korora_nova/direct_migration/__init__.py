"""Kororā's migration between hosts Nova does not manage (Xen dom0s):
korora-manage server migrate runs the same protocol steps as the Nova
hooks (korora_nova.hooks.protocol), the source's here (sender) and the
destination's there (receiver), around libvirt's migration (domains).
"""
