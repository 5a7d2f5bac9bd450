"""The transition table of a live migration."""

from korora_nova import exception
from korora_nova.migration import states
from tests import base

UUID = '8d6b2ec0-2a44-4bd6-9d5b-6c5e0b1d7a31'


class TestTransitionTable(base.TestCase):

    def test_the_source_measures_after_the_transfer(self):
        self.assertEqual(
            (states.REQUESTED, states.PEERS_ATTESTED, states.KEY_CERTIFIED,
             states.TRANSFERRING, states.MEASURED, states.VERIFIED,
             states.COMMITTED), states.FORWARD)
        self.assertEqual(
            'migration %s: KEY_CERTIFIED -> MEASURED is not allowed (from '
            'KEY_CERTIFIED only TRANSFERRING or ABORTED)' % UUID,
            str(self.assertRaises(exception.IllegalTransition, states.check,
                                  UUID, states.KEY_CERTIFIED,
                                  states.MEASURED)))
        self.assertEqual(
            'migration %s: TRANSFERRING -> VERIFIED is not allowed (from '
            'TRANSFERRING only MEASURED or QUARANTINED or ABORTED)' % UUID,
            str(self.assertRaises(exception.IllegalTransition, states.check,
                                  UUID, states.TRANSFERRING,
                                  states.VERIFIED)))

    def test_forward_chain_is_allowed_step_by_step(self):
        for old, new in zip(states.FORWARD, states.FORWARD[1:]):
            self.assertTrue(states.allowed(old, new),
                            '%s -> %s' % (old, new))
            states.check(UUID, old, new)

    def test_no_skipping_and_no_going_back(self):
        for i, old in enumerate(states.FORWARD):
            for j, new in enumerate(states.FORWARD):
                if j != i + 1:
                    self.assertFalse(states.allowed(old, new),
                                     '%s -> %s' % (old, new))

    def test_abort_from_every_state_before_commit(self):
        for state in states.FORWARD[:-1]:
            self.assertTrue(states.allowed(state, states.ABORTED), state)

    def test_quarantine_only_on_arrival(self):
        sources = [old for old in states.ALL
                   if states.allowed(old, states.QUARANTINED)]
        self.assertEqual([states.TRANSFERRING, states.MEASURED], sources)
        for old in sources:
            states.check(UUID, old, states.QUARANTINED)
        for old in states.ALL:
            if old not in sources:
                error = self.assertRaises(exception.IllegalTransition,
                                          states.check, UUID, old,
                                          states.QUARANTINED)
                self.assertEqual((old, states.QUARANTINED),
                                 (error.old, error.new))
        error = self.assertRaises(exception.IllegalTransition, states.check,
                                  UUID, states.KEY_CERTIFIED,
                                  states.QUARANTINED)
        self.assertEqual(
            'migration %s: KEY_CERTIFIED -> QUARANTINED is not allowed (from '
            'KEY_CERTIFIED only TRANSFERRING or ABORTED)' % UUID, str(error))

    def test_what_a_restarted_service_does(self):
        self.assertEqual({states.REQUESTED: states.ROLL_BACK,
                          states.PEERS_ATTESTED: states.ROLL_BACK,
                          states.KEY_CERTIFIED: states.ROLL_BACK,
                          states.TRANSFERRING: states.FINISH,
                          states.MEASURED: states.VERIFY,
                          states.VERIFIED: states.COMMIT}, states.RESUME)
        # What korora-manage shows an operator after "recovery: ".
        self.assertEqual(('roll back', 'finish', 'verify', 'commit'),
                         (states.ROLL_BACK, states.FINISH, states.VERIFY,
                          states.COMMIT))

    def test_final_states_have_no_way_out(self):
        self.assertEqual({states.COMMITTED, states.ABORTED,
                          states.QUARANTINED}, set(states.FINAL))
        for final in states.FINAL:
            self.assertEqual((), states.TRANSITIONS[final])
            self.assertTrue(states.is_final(final))
            self.assertNotIn(final, states.RESUME)
        for state in states.ALL:
            if state not in states.FINAL:
                self.assertIn(state, states.RESUME)
                self.assertFalse(states.is_final(state))

    def test_every_state_has_a_step(self):
        self.assertEqual(set(states.ALL), set(states.STEPS))
        self.assertEqual(set(states.ALL), set(states.TRANSITIONS))

    def test_refusal_message_for_an_operator(self):
        error = self.assertRaises(exception.IllegalTransition, states.check,
                                  UUID, states.VERIFIED, states.REQUESTED)
        self.assertIsInstance(error, exception.KororaError)
        self.assertEqual(
            'migration %s: VERIFIED -> REQUESTED is not allowed (from '
            'VERIFIED only COMMITTED or ABORTED)' % UUID, str(error))
        self.assertEqual((states.VERIFIED, states.REQUESTED),
                         (error.old, error.new))

    def test_refusal_from_a_final_state(self):
        error = self.assertRaises(exception.IllegalTransition, states.check,
                                  UUID, states.ABORTED, states.COMMITTED)
        self.assertEqual('migration %s: ABORTED -> COMMITTED is not allowed '
                         '(ABORTED is final)' % UUID, str(error))

    def test_unknown_state(self):
        error = self.assertRaises(exception.IllegalTransition, states.check,
                                  UUID, states.REQUESTED, 'TELEPORTED')
        self.assertIn('TELEPORTED is not a migration state', str(error))

    def test_concurrent_transition_is_an_illegal_one(self):
        error = exception.ConcurrentTransition(UUID, states.REQUESTED,
                                               states.PEERS_ATTESTED,
                                               states.ABORTED)
        self.assertIsInstance(error, exception.IllegalTransition)
        self.assertEqual(
            'migration %s: REQUESTED -> PEERS_ATTESTED is not allowed (it '
            'is ABORTED now: another service moved it first)' % UUID,
            str(error))
