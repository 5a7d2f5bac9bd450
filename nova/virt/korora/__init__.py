"""Nova loads a compute driver from below nova.virt (``compute_driver =
korora.KororaDriver``); the driver itself lives in korora_nova.

This file is installed by korora-nova into Nova's own package, as
nova-lxd and nova-powervm shipped theirs.
"""

from korora_nova.hooks import driver

KororaDriver = driver.KororaDriver
