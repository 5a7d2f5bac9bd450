"""Enrollment, attestation and the PCR watch, in process.

Real swtpm TPMs, real vTPM managers answering over oslo.messaging (its
in-process 'fake' driver here; the real broker is in the functional
tests), a real SQLite verifier database.
"""

import threading

import fixtures

from korora_nova.db import api as db
from korora_nova import exception
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import swtpm
from korora_nova.verifier import attestation
from korora_nova.verifier import enrollment
from korora_nova.rpcapi import vtpm_manager as rpcapi

WAIT = 10.0


class RecordingVerifierAPI:
    """Stands in for the verifier's RPC client: attests on pcrs_changed,
    as korora-verifier does, and counts the calls."""

    def __init__(self):
        self.attestor = None
        self.changed = []
        self.event = threading.Event()

    def pcrs_changed(self, host):
        self.changed.append(host)
        if self.attestor is not None:
            self.attestor.attest(host)
        self.event.set()


class HostTrustTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(services.InProcessBusFixture(self.config.conf))
        self.flags(pcr_watch_interval=0.05)
        self.useFixture(services.VerifierDatabaseFixture())
        self.verifier_api = RecordingVerifierAPI()
        # Before the managers start: they measure their configuration.
        self.operator = self.useFixture(
            services.OperatorKeyFixture(self.config.conf))
        self.tpm1 = self.useFixture(services.SoftwareTPMFixture())
        self.tpm2 = self.useFixture(services.SoftwareTPMFixture())
        self.flags(ek_ca_bundle=self.tpm1.ca_bundle)
        self.host1 = self.useFixture(services.VTPMManagerFixture(
            'compute-1', self.tpm1, self.verifier_api))
        self.host2 = self.useFixture(services.VTPMManagerFixture(
            'compute-2', self.tpm2, self.verifier_api))
        self.api = rpcapi.VTPMManagerAPI()
        self.attestor = attestation.Attestor(self.api)
        self.verifier_api.attestor = self.attestor

    def enroll_both(self, policy='compute-2026-11'):
        enrollment.enroll(self.api, 'compute-1')
        enrollment.enroll(self.api, 'compute-2')
        attestation.record_policy(self.api, 'compute-1', policy, 1,
                                  self.operator.key)
        db.host_set_policy('compute-1', policy)
        db.host_set_policy('compute-2', policy)


class TestEnrollment(HostTrustTestCase):

    def test_enrolled_hosts_are_listed_with_their_identity(self):
        enrollment.enroll(self.api, 'compute-1')
        host = db.host_get('compute-1')
        self.assertEqual('EK-RSA2048', host.ek_type)
        self.assertEqual(64, len(host.ek_certificate_sha256))
        self.assertFalse(host.trust_on_first_use)
        self.assertEqual(['compute-1'], [h.name for h in db.host_list()])

    def test_enrolling_twice_is_refused(self):
        enrollment.enroll(self.api, 'compute-1')
        error = self.assertRaises(exception.HostExists, enrollment.enroll,
                                  self.api, 'compute-1')
        self.assertIn('already enrolled', str(error))

    def test_ek_from_an_unknown_maker_is_refused_unless_tofu(self):
        other_ca = services.SoftwareTPMFixture(
            ca=swtpm.LocalCA(self.useFixture(
                fixtures.TempDir()).path))
        stranger = self.useFixture(other_ca)
        self.useFixture(services.VTPMManagerFixture('compute-9', stranger))
        error = self.assertRaises(exception.EndorsementError,
                                  enrollment.enroll, self.api, 'compute-9')
        self.assertIn('compute-9: EK certificate (issuer CN=swtpm-localca) '
                      'does not chain to a CA in the EK CA bundle',
                      str(error))
        self.assertRaises(exception.HostNotFound, db.host_get, 'compute-9')
        host = enrollment.enroll(self.api, 'compute-9',
                                 trust_on_first_use=True)
        self.assertTrue(host.trust_on_first_use)

    def test_host_names_are_bounded_and_without_surrounding_spaces(self):
        for name in ('', ' compute-1', 'compute-1 ', 'c' * 256):
            error = self.assertRaises(exception.EnrollmentError,
                                      enrollment.enroll, self.api, name)
            self.assertIn('a host name is 1 to 255 characters, without '
                          'surrounding spaces', str(error))
        self.assertEqual([], db.host_list())

    def test_no_ca_bundle_configured(self):
        self.flags(ek_ca_bundle=None)
        error = self.assertRaises(exception.ConfigurationError,
                                  enrollment.enroll, self.api, 'compute-1')
        self.assertIn('ek_ca_bundle is not set', str(error))

    def test_unreachable_manager(self):
        self.flags(attestation_timeout=0.5)
        error = self.assertRaises(exception.TPMConnectionError,
                                  enrollment.enroll, self.api, 'compute-7')
        self.assertIn('compute-7: the vTPM manager did not answer', str(error))


class TestAttestation(HostTrustTestCase):

    def test_trusted_hosts_and_their_verdicts(self):
        self.enroll_both()
        for host in ('compute-1', 'compute-2'):
            verdict = self.attestor.attest(host)
            self.assertTrue(verdict.trusted, verdict.summary())
            self.assertEqual('%s: trusted under policy compute-2026-11 v1'
                             % host, verdict.summary())
        trust = db.host_trust_all()
        self.assertTrue(trust['compute-1'][0])
        self.assertTrue(trust['compute-2'][0])
        rows = db.verdicts_for_host('compute-1')
        self.assertEqual(1, len(rows))
        self.assertTrue(rows[0].quote_message)     # kept for audit
        self.assertIn('"10"', rows[0].pcr_values)

    def test_pcr_change_is_reported_and_attested_at_once(self):
        self.enroll_both()
        self.attestor.attest('compute-2')
        self.host2.extend_pcr(10, b'unexpected kernel module')
        self.assertTrue(self.verifier_api.event.wait(WAIT),
                        'the PCR watch never reported the change')
        self.assertIn('compute-2', self.verifier_api.changed)
        trusted, summary, _ = db.host_trust_all()['compute-2']
        self.assertFalse(trusted)
        self.assertIn('compute-2: PCR sha256:10 = ', summary)
        self.assertIn('not allowed by policy compute-2026-11 v1', summary)

    def test_several_policy_versions_during_an_upgrade(self):
        self.enroll_both()
        self.host2.extend_pcr(10, b'kernel 6.12')
        self.assertTrue(self.verifier_api.event.wait(WAIT))
        self.assertFalse(db.host_trust_all()['compute-2'][0])
        # The operator records the upgraded host as version 2: both
        # versions are active, so both hosts are trusted.
        attestation.record_policy(self.api, 'compute-2', 'compute-2026-11',
                                  2, self.operator.key)
        self.assertTrue(self.attestor.attest('compute-1').trusted)
        self.assertTrue(self.attestor.attest('compute-2').trusted)
        db.policy_set_active('compute-2026-11', 1, False)
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertIn('policy compute-2026-11 v2', verdict.summary())

    def test_stopped_manager_means_untrusted(self):
        self.enroll_both()
        self.assertTrue(self.attestor.attest('compute-1').trusted)
        self.flags(attestation_timeout=0.5)
        self.host1.stop()
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertEqual({'unreachable'}, verdict.codes())
        self.assertIn('compute-1: no valid quote: compute-1: the vTPM '
                      'manager did not answer', verdict.summary())
        self.assertFalse(db.host_trust_all()['compute-1'][0])

    def test_host_without_policy_is_untrusted(self):
        enrollment.enroll(self.api, 'compute-1')
        verdict = self.attestor.attest('compute-1')
        self.assertFalse(verdict.trusted)
        self.assertIn('no active reference policy is assigned',
                      verdict.summary())

    def test_restarted_manager_does_not_measure_twice(self):
        self.enroll_both()
        self.assertTrue(self.attestor.attest('compute-1').trusted)
        self.host1.stop()
        self.useFixture(services.VTPMManagerFixture(
            'compute-1', self.tpm1, self.verifier_api,
            state_path=self.host1.state_path))
        # A second manager in the same boot with the same code and
        # configuration must leave PCR 10 as it was.
        self.assertTrue(self.attestor.attest('compute-1').trusted)

    def test_notification_on_trust_change_only(self):
        sent = []

        class Notifier:
            def info(self, ctxt, event_type, payload):
                sent.append((event_type, payload))

        self.attestor.notifier = Notifier()
        self.enroll_both()
        self.attestor.attest('compute-1')
        self.attestor.attest('compute-1')
        self.assertEqual(1, len(sent))
        event_type, payload = sent[0]
        self.assertEqual('korora.host.trust.update', event_type)
        self.assertEqual('compute-1', payload['host'])
        self.assertTrue(payload['trusted'])

    def test_scheduled_rounds_claim_each_host_once(self):
        from korora_nova.verifier import manager as verifier_manager
        self.enroll_both()
        first = verifier_manager.Verifier(self.config.conf, self.attestor)
        second = verifier_manager.Verifier(self.config.conf, self.attestor)
        self.addCleanup(first.stop)
        self.addCleanup(second.stop)
        self.assertEqual(2, first.run_due() + second.run_due())
        self.assertEqual(0, first.run_due() + second.run_due())
        self.assertEqual(1, len(db.verdicts_for_host('compute-1')))

    def test_a_round_goes_on_until_no_host_is_due(self):
        """One challenge in flight and batches of one verdict: one round
        still attests every due host, and a stopped manager's host gets
        its untrusted verdict with the reason."""
        from korora_nova.verifier import manager as verifier_manager
        self.enroll_both()
        self.flags(attestations_in_flight=1, verdict_batch_size=1,
                   attestation_timeout=0.5)
        self.host2.stop()
        verifier = verifier_manager.Verifier(self.config.conf, self.attestor)
        self.addCleanup(verifier.stop)
        self.assertEqual(2, verifier.run_due())
        trust = db.host_trust_all()
        self.assertIs(True, trust['compute-1'][0])
        self.assertIs(False, trust['compute-2'][0])
        self.assertIn('compute-2: no valid quote: compute-2: the vTPM '
                      'manager did not answer', trust['compute-2'][1])
        self.assertEqual(0, verifier.run_due())
        self.assertEqual(1, len(db.verdicts_for_host('compute-2')))
