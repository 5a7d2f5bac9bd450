"""One owner for one TPM: serialized commands, flushed objects, reconnects.

A TPM without a resource manager (swtpm, /dev/tpm0) serves one client at a
time and keeps every transient object and session until it is flushed, so
every command of this process goes through one TPMConnection, under its
lock, and whatever an operation loads it flushes again.
"""

import contextlib
import threading

from oslo_log import log as logging
from tpm2_pytss import ESAPI
from tpm2_pytss import TCTILdr
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_CAP
from tpm2_pytss.constants import TPM2_HC
from tpm2_pytss.constants import TPM2_RC

from korora_nova import exception

LOG = logging.getLogger(__name__)

# Response codes from below the TPM itself (TCTI and transport layers):
# the link is broken and has to be reopened.
_TCTI_LAYER = 0x000A0000
_LAYER_MASK = 0x00FF0000


def parse_tcti(spec):
    """Split "name:config" (e.g. "swtpm:host=127.0.0.1,port=2321")."""
    name, _, config = (spec or '').partition(':')
    if not name:
        raise exception.ConfigurationError(
            'TPM TCTI %r is empty: expected NAME[:CONFIG], for example '
            '"device:/dev/tpmrm0"' % spec)
    return name, config or None


def is_link_error(error):
    """True if a TSS2 error came from the transport, not from the TPM."""
    return isinstance(error, TSS2_Exception) and (
        error.rc & _LAYER_MASK == _TCTI_LAYER)


class TPMConnection:
    """The process's single link to one TPM.

    Use ``with connection.esapi() as ectx:`` for each operation; the block
    runs alone on the TPM. A broken link is closed and reopened by the next
    operation; the failed operation is not retried, since an extend or an
    NV increment must not run twice.
    """

    def __init__(self, tcti):
        self.tcti = tcti
        self._name, self._config = parse_tcti(tcti)
        self._lock = threading.RLock()
        self._tcti_ctx = None
        self._ectx = None

    @contextlib.contextmanager
    def esapi(self, wait=True):
        """wait=False: TPMBusy at once if another operation holds the
        TPM (for background work that must never delay a migration)."""
        if not self._lock.acquire(blocking=wait):
            raise exception.TPMBusy(tcti=self.tcti)
        try:
            if self._ectx is None:
                self._open()
            try:
                yield self._ectx
            except TSS2_Exception as error:
                if is_link_error(error):
                    LOG.warning('TPM at %s: link lost (%s); it will be '
                                'reopened', self.tcti, error)
                    self._close()
                    raise exception.TPMConnectionError(
                        'TPM at %s is unreachable: %s' % (self.tcti, error))
                raise exception.TPMError(
                    'TPM at %s refused a command: %s' % (self.tcti, error))
        finally:
            self._lock.release()

    def close(self):
        with self._lock:
            self._close()

    def _open(self):
        try:
            self._tcti_ctx = TCTILdr(self._name, self._config)
            self._ectx = ESAPI(self._tcti_ctx)
        except TSS2_Exception as error:
            self._close()
            raise exception.TPMConnectionError(
                'cannot open the TPM at %s: %s' % (self.tcti, error))
        self._flush_leftovers()

    def _flush_leftovers(self):
        """Flush objects and sessions an earlier client left behind."""
        for first in (TPM2_HC.TRANSIENT_FIRST, TPM2_HC.LOADED_SESSION_FIRST):
            try:
                _, data = self._ectx.get_capability(
                    TPM2_CAP.HANDLES, first, 64)
                handles = data.data.handles
                for i in range(min(handles.count, 64)):
                    handle = handles.handle[i]
                    if (handle & 0xFF000000) != (first & 0xFF000000):
                        continue
                    tr = self._ectx.tr_from_tpmpublic(handle)
                    self._ectx.flush_context(tr)
            except TSS2_Exception as error:
                if error.rc != TPM2_RC.HANDLE:
                    LOG.debug('TPM at %s: flushing leftovers: %s',
                              self.tcti, error)

    def _close(self):
        if self._ectx is not None:
            try:
                self._ectx.close()
            except TSS2_Exception:
                pass
        if self._tcti_ctx is not None:
            try:
                self._tcti_ctx.close()
            except (TSS2_Exception, AttributeError):
                pass
        self._ectx = None
        self._tcti_ctx = None


def flush(ectx, *handles):
    """Flush transient objects or sessions, ignoring ones already gone."""
    for handle in handles:
        try:
            ectx.flush_context(handle)
        except TSS2_Exception as error:
            LOG.debug('flushing a TPM handle failed: %s', error)
