"""TrustedVTPMFilter: only hosts whose vTPM manager holds a fresh, trusted
attestation verdict.

Verdicts are read from the verifier's database ([korora_database]), never
from the message bus, so nothing injected on the bus can make a host
pass. One query per scheduling request serves every candidate host, and
one log line at INFO names the hosts it refused (each host's whole
reason is logged at DEBUG).
"""

from nova.scheduler import filters
from nova.scheduler import utils
from nova.virt import hardware
from oslo_db import exception as db_exception
from oslo_log import log as logging

from korora_nova.attestation import freshness
from korora_nova import conf
from korora_nova.db import api as db
from korora_nova import exception

CONF = conf.CONF
LOG = logging.getLogger(__name__)

EXTRA_SPEC = 'korora:trusted_host'
# A request's log line names this many refused hosts and counts the
# rest; each reason is cut to MAX_REASON characters.
MAX_NAMED = 20
MAX_REASON = freshness.MAX_REASON


def requires_trusted_host(flavor, image_meta):
    """vTPM instances, flavors asking for it, or every instance.

    The one rule for the scheduler filter and the live-migration hooks.
    """
    if CONF.korora.enforce_for_all_instances:
        return True
    if flavor.extra_specs.get(EXTRA_SPEC) == 'required':
        return True
    return hardware.get_vtpm_constraint(flavor, image_meta) is not None


def applies_to(spec_obj):
    return requires_trusted_host(spec_obj.flavor, spec_obj.image)


class TrustedVTPMFilter(filters.BaseHostFilter):
    """Pass only hosts with a trusted verdict younger than trust_ttl."""

    RUN_ON_REBUILD = False
    # Trust is looked up once per request, not per instance of it.
    run_filter_once_per_request = True

    def filter_all(self, filter_obj_list, spec_obj):
        # BaseHostFilter skips rebuilds in _filter_one, which this
        # filter_all does not call.
        if not self.RUN_ON_REBUILD and utils.request_is_rebuild(spec_obj):
            return filter_obj_list
        if not applies_to(spec_obj):
            return filter_obj_list
        cutoff = freshness.cutoff(db.utcnow(), CONF.korora.trust_ttl)
        trust = self._trust(cutoff)
        if trust is None:
            return []
        passed, refused = [], []
        for host_state in filter_obj_list:
            why = self._refusal(host_state.host, trust, cutoff)
            if why is None:
                passed.append(host_state)
            else:
                refused.append((host_state.host, why))
        if refused:
            _log_refused(refused, len(passed) + len(refused))
        return passed

    def host_passes(self, host_state, spec_obj):
        return bool(self.filter_all([host_state], spec_obj))

    @staticmethod
    def _trust(cutoff):
        try:
            return db.host_trust_for_scheduling(cutoff)
        except (exception.DatabaseError, db_exception.DBError) as error:
            LOG.error('TrustedVTPMFilter: the verifier database cannot be '
                      'read (%s): no host is trusted', error)
            return None

    @staticmethod
    def _refusal(host, trust, cutoff):
        """Why host is refused, in short (None if it passes); the whole
        reason goes to the debug log."""
        why = freshness.refusal(host, trust.get(host), cutoff,
                                CONF.korora.trust_ttl)
        if why is None:
            return None
        LOG.debug('%s: not a trusted vTPM destination: %s', host, why[1])
        return why[0]


def _log_refused(refused, total):
    """One line per request: the refused hosts, MAX_NAMED at most, each
    with its reason in short."""
    named = ', '.join('%s (%s)' % item for item in refused[:MAX_NAMED])
    more = len(refused) - MAX_NAMED
    LOG.info('TrustedVTPMFilter: %d of %d hosts are not trusted vTPM '
             'destinations: %s%s', len(refused), total, named,
             '; and %d more' % more if more > 0 else '')
