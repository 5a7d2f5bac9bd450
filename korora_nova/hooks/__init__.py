"""Kororā's hooks in Nova's live-migration path.

Nova 34 has no hook mechanism, so the hooks are methods of a compute
driver class that korora builds on top of the configured base driver
(see driver.py); every other method stays the base driver's.
"""
