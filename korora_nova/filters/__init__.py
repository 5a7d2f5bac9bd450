"""Nova scheduler filters of korora-nova.

Enable with, in nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = korora_nova.filters.TrustedVTPMFilter
    enabled_filters = ...,TrustedVTPMFilter
"""

from korora_nova.filters.trusted_vtpm import TrustedVTPMFilter

__all__ = ['TrustedVTPMFilter']
