"""What takes TPM commands off a migration's path, against a real TPM:
quotes that reuse the PCR values last read, keys made ahead and kept
loaded, the NV counter's handle found once, background work that never
waits for the TPM."""

import threading

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_CAP
from tpm2_pytss.constants import TPM2_HC

from korora_nova.attestation import appraisal
from korora_nova.attestation import policy
from korora_nova import exception
from korora_nova.demo import services
from korora_nova.tpm import certify
from korora_nova.tpm import duplication
from korora_nova.tpm import nv_counter
from korora_nova.tpm import quote
from tests import base

SELECTION = [('sha256', 0), ('sha256', 10)]
COUNTER_INDEX = 0x01500020


class TestQuoteWithKnownValues(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host = self.useFixture(services.SoftwareTPMFixture())
        self.ak = self.host.attestation_key()
        self.key = appraisal.load_public_key(self.ak.public)

    def appraise(self, made, nonce, reference):
        return appraisal.appraise_quote(made, self.key, nonce, reference,
                                        host='compute-1')

    def test_values_that_still_hold_are_reported_and_verify(self):
        known = quote.read_pcrs(self.host.connection, SELECTION)
        made = quote.quote(self.host.connection, self.ak, SELECTION, b'n1',
                           known_values=known)
        self.assertEqual(known, made.pcr_values)
        verdict = self.appraise(made, b'n1',
                                policy.from_values('p', 1, known))
        self.assertTrue(verdict.trusted, verdict.summary())

    def test_values_that_changed_are_read_again(self):
        stale = quote.read_pcrs(self.host.connection, SELECTION)
        quote.extend_pcr(self.host.connection, 'sha256', 10, b'a module')
        made = quote.quote(self.host.connection, self.ak, SELECTION, b'n2',
                           known_values=stale)
        now = quote.read_pcrs(self.host.connection, SELECTION)
        self.assertEqual(now, made.pcr_values)
        self.assertNotEqual(stale, made.pcr_values)
        # The values reported are the ones the TPM signed: an old policy
        # refuses them for what they are, not for a digest mismatch.
        verdict = self.appraise(made, b'n2',
                                policy.from_values('p', 1, stale))
        self.assertFalse(verdict.trusted)
        self.assertEqual({'pcr-policy'}, verdict.codes())

    def test_values_missing_a_pcr_are_read_again(self):
        partial = {'sha256': {0: b'\x00' * 32}}
        made = quote.quote(self.host.connection, self.ak, SELECTION, b'n3',
                           known_values=partial)
        self.assertEqual(quote.read_pcrs(self.host.connection, SELECTION),
                         made.pcr_values)

    def test_the_update_counter_moves_with_an_extend(self):
        before = quote.pcr_update_counter(self.host.connection, SELECTION)
        self.assertEqual(before, quote.pcr_update_counter(
            self.host.connection, SELECTION))
        # PCR 7 is not in the selection; the counter still moves.
        quote.extend_pcr(self.host.connection, 'sha256', 7, b'a key')
        self.assertGreater(quote.pcr_update_counter(self.host.connection,
                                                    SELECTION), before)

    def test_pcrs_the_update_counter_does_not_count(self):
        # The PC Client profile leaves out 16 (debug) and 21 to 23: a
        # watch cannot learn their extends from the counter.
        selection = SELECTION + [('sha256', 16), ('sha256', 23)]
        self.assertEqual([('sha256', 16), ('sha256', 23)],
                         quote.uncounted_pcrs(self.host.connection,
                                              selection))
        self.assertEqual([], quote.uncounted_pcrs(self.host.connection,
                                                  SELECTION))
        before = quote.pcr_update_counter(self.host.connection, selection)
        quote.extend_pcr(self.host.connection, 'sha256', 16, b'debug')
        self.assertEqual(before, quote.pcr_update_counter(
            self.host.connection, selection))


class TestKeptKeys(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host = self.useFixture(services.SoftwareTPMFixture())
        self.ak = self.host.attestation_key()
        self.key = appraisal.load_public_key(self.ak.public)

    def certified(self, made, nonce):
        verdict = appraisal.appraise_certification(
            made.attestation, made.signature, self.key, nonce, made.public,
            host='compute-2')
        self.assertTrue(verdict.trusted, verdict.summary())

    def test_a_kept_key_is_certified_and_opens_its_secret(self):
        kept = certify.create_loaded_key(self.host.connection)
        made, still = certify.certify_loaded_key(self.host.connection,
                                                 self.ak, b'n' * 32, kept)
        self.assertIs(kept, still)
        self.certified(made, b'n' * 32)
        sealed = duplication.wrap(made.public, b'vtpm secret')
        self.assertEqual(b'vtpm secret', duplication.unwrap(
            self.host.connection, made.unique, sealed, still))
        # It stays loaded for its owner to release: a second secret sealed
        # to it opens too, then it is flushed.
        again = duplication.wrap(made.public, b'second')
        self.assertEqual(b'second', duplication.unwrap(
            self.host.connection, made.unique, again, still))
        certify.release_key(self.host.connection, still)
        self.assertEqual([], self.transient_handles())

    def test_a_kept_key_does_not_outlive_a_tpm_restart(self):
        kept = certify.create_loaded_key(self.host.connection)
        before, kept = certify.certify_loaded_key(
            self.host.connection, self.ak, b'b' * 32, kept)
        old_secret = duplication.wrap(before.public, b'sealed before')
        # The TPM restarts under the link (its PCRs are reset): the kept
        # handle names nothing, or another object, and the NULL
        # hierarchy has a new seed.
        self.host.tpm.stop()
        self.host.tpm.start()
        self.assertEqual({'sha256': {0: b'\x00' * 32, 10: b'\x00' * 32}},
                         quote.read_pcrs(self.host.connection, SELECTION))
        other = certify.create_loaded_key(self.host.connection)
        made, again = certify.certify_loaded_key(self.host.connection,
                                                 self.ak, b'm' * 32, kept)
        # What is certified now is a key of this boot, not the old one.
        self.assertIsNot(kept, again)
        self.assertEqual(kept.unique, again.unique)
        self.assertNotEqual(before.public, made.public)
        self.certified(made, b'm' * 32)
        error = self.assertRaises(exception.TPMError, duplication.unwrap,
                                  self.host.connection, made.unique,
                                  old_secret, kept)
        self.assertIn('refused a command', str(error))
        sealed = duplication.wrap(made.public, b'after restart')
        self.assertEqual(b'after restart', duplication.unwrap(
            self.host.connection, made.unique, sealed, again))
        certify.release_key(self.host.connection, again)
        certify.release_key(self.host.connection, other)

    def test_a_kept_key_survives_a_reopened_link(self):
        kept = certify.create_loaded_key(self.host.connection)
        self.host.connection.close()
        made, again = certify.certify_loaded_key(self.host.connection,
                                                 self.ak, b'l' * 32, kept)
        self.assertEqual(kept.unique, again.unique)
        self.assertIsNot(kept.context, again.context)
        self.certified(made, b'l' * 32)
        # Releasing the key of a closed link flushes nothing else.
        certify.release_key(self.host.connection, kept)
        sealed = duplication.wrap(made.public, b'reopened')
        self.assertEqual(b'reopened', duplication.unwrap(
            self.host.connection, made.unique, sealed, again))

    def test_a_kept_key_leaves_room_to_certify_another(self):
        # A TPM without a resource manager holds three objects; with one
        # key kept, another can be made, certified and flushed.
        kept = certify.create_loaded_key(self.host.connection)
        other = certify.create_certified_storage_key(
            self.host.connection, self.ak, b'o' * 32)
        self.certified(other, b'o' * 32)
        certify.release_key(self.host.connection, kept)

    def test_a_secret_for_another_key_does_not_open(self):
        kept = certify.create_loaded_key(self.host.connection)
        made, kept = certify.certify_loaded_key(self.host.connection,
                                                self.ak, b'n' * 32, kept)
        other = certify.create_certified_storage_key(
            self.host.connection, self.ak, b'x' * 32)
        sealed = duplication.wrap(other.public, b'not for kept')
        self.assertRaises(exception.TPMError, duplication.unwrap,
                          self.host.connection, made.unique, sealed, kept)
        certify.release_key(self.host.connection, kept)

    def transient_handles(self):
        with self.host.connection.esapi() as ectx:
            _, data = ectx.get_capability(TPM2_CAP.HANDLES,
                                          TPM2_HC.TRANSIENT_FIRST, 8)
        return list(data.data.handles)


class TestCounterHandle(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host = self.useFixture(services.SoftwareTPMFixture())

    def test_an_index_undefined_behind_its_back_is_found_again(self):
        counter = nv_counter.MonotonicCounter(self.host.connection,
                                              COUNTER_INDEX)
        first = counter.increment()
        self.assertEqual(first, counter.read())
        # Root on the host undefines it on the same link.
        with self.host.connection.esapi() as ectx:
            ectx.nv_undefine_space(counter._handle(ectx), ESYS_TR.OWNER)
        error = self.assertRaises(exception.TPMError, counter.read)
        self.assertIn('refused a command', str(error))
        # Looked up again, and defined anew: a new counter starts at the
        # highest count the TPM ever had, never lower.
        self.assertGreaterEqual(counter.read(), first)


class TestBusyTPM(base.TestCase):

    def test_background_work_does_not_wait(self):
        host = self.useFixture(services.SoftwareTPMFixture())
        holding, release = threading.Event(), threading.Event()

        def hold():
            with host.connection.esapi():
                holding.set()
                release.wait(30)
        holder = threading.Thread(target=hold)
        holder.start()
        self.addCleanup(holder.join)
        self.addCleanup(release.set)
        self.assertTrue(holding.wait(30))
        error = self.assertRaises(exception.TPMBusy, quote.pcr_update_counter,
                                  host.connection, SELECTION, wait=False)
        self.assertEqual('the TPM at %s is busy' % host.tpm.tcti, str(error))
        release.set()
        holder.join()
        self.assertIsInstance(quote.pcr_update_counter(
            host.connection, SELECTION, wait=False), int)
