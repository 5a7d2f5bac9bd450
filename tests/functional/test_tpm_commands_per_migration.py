"""The TPM commands of one live migration, counted by the slow-TPM proxy
(korora_nova.demo.slow_tpm) in front of each host's swtpm.

Nova's own services through its functional harness, the hooked fake
driver, a real vTPM manager on a real swtpm per host, the verifier with
its SQLite database. The proxy charges no delay here (scale 0): it only
counts. issue 12's budget for a migration's critical path: at most 12
TPM commands on both hosts together and no key generation.
"""

import time

from testtools import content

from korora_nova.demo import cloud
from korora_nova.demo import slow_tpm
from korora_nova.migration import states

SOURCE, DEST = 'compute-1', 'compute-2'
BUDGET = 12


class TestTPMCommandsPerMigration(cloud.KororaCloud):

    SLOW_TPM_SCALE = 0.0

    def setUp(self):
        super().setUp()
        # No background TPM work during the count (the PCR watch; the
        # keys were made ahead when the managers started).
        self.flags(pcr_watch_interval=600, group='korora')
        time.sleep(0.3)

    def test_a_migration_makes_at_most_12_tpm_commands_and_no_key(self):
        server = self.boot_server(self.vtpm_flavor, host=SOURCE)
        known = self.record_uuids(server)
        marks = {host: self.slow_tpms[host].mark()
                 for host in self.COMPUTE_HOSTS}
        self.live_migrate_api(server, host=DEST, microversion='2.34',
                              wait=False)
        record = self.wait_for_new_final_record(server, known)
        self.assertEqual(states.COMMITTED, record.state, record.reason)
        manager = self.managers[DEST].manager
        self._poll(lambda: manager._spare_key is not None, 30,
                   'the next key made ahead on %s' % DEST)
        # What the destination's manager does after the arrival's quote
        # (the next key, the used one flushed) is off the path, beside the
        # source's commit (slow_tpm.on_the_path).
        counts, background = {}, {}
        for host, role in ((SOURCE, 'source'), (DEST, 'dest'),
                           ('compute-3', 'source')):
            counts[host], background[host] = slow_tpm.on_the_path(
                role, self.slow_tpms[host].commands()[marks[host]:])
        self.addDetail('tpm-commands', content.text_content('\n'.join(
            '%s: %d commands on the path: %s; beside it: %s' % (
                host, sum(found.values()), ', '.join(
                    '%s %d' % item for item in sorted(found.items())),
                ', '.join('%s %d' % item
                          for item in sorted(background[host].items())))
            for host, found in sorted(counts.items()))))
        self.assertEqual({}, counts['compute-3'])
        # The next migration's key is made once this one's arrival is
        # measured.
        self.assertEqual(1, slow_tpm.key_generations(background[DEST]),
                         background)
        self.assertEqual(0, sum(slow_tpm.key_generations(found)
                                for found in counts.values()), counts)
        self.assertLessEqual(sum(sum(found.values())
                                 for found in counts.values()), BUDGET,
                             counts)
        # Each host signed what it must: the source its attestation and
        # manifest, the destination its request, key and arrival.
        self.assertEqual(2, counts[SOURCE]['Quote'], counts)
        self.assertEqual(2, counts[DEST]['Quote'], counts)
        self.assertEqual(1, counts[DEST]['Certify'], counts)
        self.assertEqual(1, counts[DEST]['Import'], counts)
        self.assertEqual(1, counts[SOURCE]['NV_Increment'], counts)
