"""What the attestation tests share: software TPMs kept for the whole test
module, and assertions on what a verdict tells its reader.

Starting and stopping a swtpm costs a second or two, so tests that leave a
TPM as they found it (quotes, PCR reads, certifications, credential
activations) share two TPMs per test module. A test that extends a PCR
starts its own.
"""

import atexit
import os
import threading

from korora_nova.attestation import appraisal
from korora_nova.attestation import verdict as verdict_module
from korora_nova import exception
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import quote as tpm_quote

SELECTION = [('sha256', i) for i in (0, 1, 2, 3, 7, 10)]

ECDSA = 'ecdsa-p256-sha256'
RSASSA = 'rsassa-2048-sha256'
RSAPSS = 'rsapss-2048-sha256'

# One persistent handle per AK algorithm, so all three live in one TPM.
AK_HANDLES = {ECDSA: 0x81010020, RSASSA: 0x81010021, RSAPSS: 0x81010022}


def nonce():
    return os.urandom(16)


_pool = {}
_pool_lock = threading.Lock()


def software_tpm(name):
    """The shared software TPM of that name, started on first use.

    The TPMs live until stop_software_tpms(): every test module that uses
    them names it as its tearDownModule, so no swtpm outlives the module
    (and a test process killed later leaves none behind).
    """
    with _pool_lock:
        if name not in _pool:
            tpm = services.SoftwareTPMFixture()
            tpm.setUp()
            if not _pool:
                atexit.register(stop_software_tpms)
            _pool[name] = tpm
        return _pool[name]


def stop_software_tpms():
    with _pool_lock:
        tpms = list(_pool.values())
        _pool.clear()
        for tpm in tpms:
            tpm.cleanUp()
    atexit.unregister(stop_software_tpms)


class SharedTPMTestCase(base.TestCase):
    """Tests that use TPM_COUNT software TPMs shared in the test module.

    The tests of such a class must leave the TPMs as they found them:
    quotes, PCR reads, certifications and credential activations only, no
    PCR extends and no persistent objects but the AKs of AK_HANDLES.
    """

    TPM_COUNT = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tpms = [software_tpm(name) for name in 'AB'[:cls.TPM_COUNT]]
        cls.setUpTPMs()

    @classmethod
    def setUpTPMs(cls):
        """Per-class preparation once the TPMs run (AKs, policies...)."""

    @staticmethod
    def attestation_key(tpm, algorithm=ECDSA):
        """The TPM's AK of that algorithm and its verifier-side key."""
        ak = tpm.attestation_key(algorithm, AK_HANDLES[algorithm])
        return ak, appraisal.load_public_key(ak.public)

    @staticmethod
    def quote(tpm, ak, quote_nonce, selection=SELECTION):
        return tpm_quote.quote(tpm.connection, ak, selection, quote_nonce)

    # Assertions on verdicts.

    def appraise(self, *args, **kwargs):
        """appraise_quote, which must answer every input with a Verdict."""
        try:
            result = appraisal.appraise_quote(*args, **kwargs)
        except exception.KororaError as error:
            self.fail('appraise_quote raised %r instead of returning an '
                      'untrusted verdict' % error)
        except Exception as error:
            self.fail('appraise_quote let %s escape: %s (only the '
                      "project's own errors may leave it, and it should "
                      'return a verdict)' % (type(error).__name__, error))
        self.assertIsInstance(result, verdict_module.Verdict)
        return result

    def assertTrusted(self, result, host=None):
        self.assertEqual((), result.reasons, result.summary())
        self.assertTrue(result.trusted)
        self.assertTrue(result.evidence_valid)
        summary = result.summary()
        self.assertIn('trusted', summary)
        self.assertNotIn('untrusted', summary)
        if host:
            self.assertTrue(summary.startswith('%s: trusted' % host),
                            summary)

    def assertUntrusted(self, result, code, *words, evidence_valid=False,
                        host=None):
        """Not trusted, with a reason of that code whose message holds
        every word; a reason names the host when it is known."""
        self.assertFalse(result.trusted, result.summary())
        self.assertEqual(evidence_valid, result.evidence_valid,
                         result.summary())
        self.assertIn(code, result.codes(), result.summary())
        messages = [r.message for r in result.reasons if r.code == code]
        self.assertTrue(
            any(all(w in m for w in words) for m in messages),
            'no %s reason mentions %s: %s' % (code, words, messages))
        summary = result.summary()
        self.assertTrue(summary.startswith('untrusted: '), summary)
        for message in messages:
            self.assertIn(message, summary)
            if host:
                self.assertTrue(message.startswith(host + ': '), message)
        return messages
