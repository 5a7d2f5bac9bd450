"""TPM NV monotonic counters: numbers that only ever go up.

A migration binds its manifest to a counter value and advances it on
commit, so an old manifest or an old copy of a vTPM's state cannot be
replayed. The TPM itself guarantees the counter never goes back.
"""

import contextlib

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.constants import TPM2_NT
from tpm2_pytss.constants import TPMA_NV
from tpm2_pytss.types import TPM2B_NV_PUBLIC
from tpm2_pytss.types import TPMS_NV_PUBLIC

from korora_nova import exception

NV_INDEX_FIRST = 0x01000000
NV_INDEX_LAST = 0x01BFFFFF   # owner range; 0x01C00000+ is the TCG's
COUNTER_ATTRIBUTES = (TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD
                      | TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD
                      | TPMA_NV.NO_DA
                      | (TPM2_NT.COUNTER << TPMA_NV.TPM2_NT_SHIFT))


class MonotonicCounter:
    """An NV counter at a fixed index, defined on first use."""

    def __init__(self, connection, index):
        if not NV_INDEX_FIRST <= index <= NV_INDEX_LAST:
            raise exception.ConfigurationError(
                'NV counter index 0x%08x is outside the owner range '
                '0x%08x-0x%08x' % (index, NV_INDEX_FIRST, NV_INDEX_LAST))
        self.connection = connection
        self.index = index
        # (ESAPI context, its handle of the index): found once per link,
        # not with an NV_ReadPublic before every read.
        self._esys = (None, None)

    def _handle(self, ectx):
        context, handle = self._esys
        if context is not ectx:
            handle = self._find_or_define(ectx)
            self._esys = (ectx, handle)
        return handle

    def _find_or_define(self, ectx):
        try:
            return ectx.tr_from_tpmpublic(self.index)
        except TSS2_Exception as error:
            if error.rc & 0xFF != 0x8B:     # TPM_RC_HANDLE: not defined
                raise
        public = TPM2B_NV_PUBLIC(nvPublic=TPMS_NV_PUBLIC(
            nvIndex=self.index, nameAlg=TPM2_ALG.SHA256,
            attributes=COUNTER_ATTRIBUTES, dataSize=8))
        handle = ectx.nv_define_space(b'', public)
        ectx.nv_increment(handle, handle)   # a counter is unreadable
        return handle                       # until first incremented

    def read(self):
        with self.connection.esapi() as ectx, self._forgotten_on_error():
            handle = self._handle(ectx)
            data = ectx.nv_read(handle, 8, 0, auth_handle=handle)
        return int.from_bytes(bytes(data), 'big')

    def increment(self):
        """Advance the counter; returns the new value."""
        with self.connection.esapi() as ectx, self._forgotten_on_error():
            handle = self._handle(ectx)
            ectx.nv_increment(handle, handle)
            data = ectx.nv_read(handle, 8, 0, auth_handle=handle)
        return int.from_bytes(bytes(data), 'big')

    @contextlib.contextmanager
    def _forgotten_on_error(self):
        """A refused command may mean the index was undefined or
        redefined behind our back: look it up again next time."""
        try:
            yield
        except TSS2_Exception:
            self._esys = (None, None)
            raise
