"""The Horizon plugin decides which instances Kororā applies to as
nova-scheduler's TrustedVTPMFilter and the live-migration hooks do."""

import itertools

from nova import exception as nova_exception
from nova import objects

from korora_nova.dashboard import applies
from korora_nova.filters import trusted_vtpm
from tests import base

objects.register_all()

FLAVORS = ({}, {'hw:tpm_version': '2.0'},
           {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb'},
           {'korora:trusted_host': 'required'},
           {'korora:trusted_host': 'optional'}, {'hw:cpu_policy': 'dedicated'})
IMAGES = ({}, {'hw_tpm_version': '2.0'}, {'hw_tpm_model': 'tpm-tis'},
          {'hw_machine_type': 'q35'})


class TestSameRuleAsTheFilter(base.TestCase):

    def test_every_flavor_and_image(self):
        for enforce, extra_specs, properties in itertools.product(
                (False, True), FLAVORS, IMAGES):
            self.flags(enforce_for_all_instances=enforce)
            flavor = objects.Flavor(name='m1.test',
                                    extra_specs=dict(extra_specs))
            image = objects.ImageMeta.from_dict({'name': 'image',
                                                 'properties': properties})
            try:
                expected = trusted_vtpm.requires_trusted_host(flavor, image)
            except nova_exception.FlavorImageConflict:
                continue    # Nova boots no such instance
            self.assertEqual(
                expected, applies.requires_trusted_host(
                    extra_specs, properties, enforce),
                (enforce, extra_specs, properties))

    def test_a_vtpm_flavor_applies_and_a_plain_one_does_not(self):
        self.assertTrue(applies.requires_trusted_host(
            {'hw:tpm_version': '2.0'}, {}))
        self.assertFalse(applies.requires_trusted_host({}, {}))
