"""The OSC plugin's registration: what python-openstackclient reads
from setup.cfg's entry points, and the plugin module's interface."""

import argparse
import configparser
import importlib
from importlib import metadata
import os

from cliff import command
import fixtures
from oslotest import base

from korora_nova.client import v1
from korora_nova.osc import plugin

SETUP_CFG = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                         'setup.cfg')
# The commands (19): "openstack korora ..." each.
COMMANDS = {
    'host list', 'host show', 'host enroll', 'host delete', 'host attest',
    'host set', 'policy list', 'policy show', 'policy import',
    'policy activate', 'policy deactivate', 'migration list',
    'migration show', 'audit verify', 'audit head', 'audit anchor list',
    'audit anchor create', 'server trust', 'policy record'}


def _entry_points(group):
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    lines = parser['entry_points'][group].strip().splitlines()
    return dict(line.replace(' ', '').split('=', 1) for line in lines)


class TestRegistration(base.BaseTestCase):

    def test_the_extension_is_the_plugin_module(self):
        self.assertEqual({'korora': 'korora_nova.osc.plugin'},
                         _entry_points('openstack.cli.extension'))

    def test_every_command_is_registered_and_loads(self):
        commands = _entry_points('openstack.korora.v1')
        # OSC turns underscores into spaces: "korora host list".
        self.assertEqual({'korora ' + name for name in COMMANDS},
                         {name.replace('_', ' ') for name in commands})
        for target in commands.values():
            module, _, name = target.partition(':')
            found = getattr(importlib.import_module(module), name)
            self.assertTrue(issubclass(found, command.Command), target)
            self.assertTrue(found.__doc__, target)

    def test_the_api_name_is_not_one_of_openstackclients_own(self):
        # OSC skips a plugin whose API_NAME a base module has already.
        base_names = {entry.name for entry in
                      metadata.entry_points(group='openstack.cli.base')}
        self.assertIn('compute', base_names)
        self.assertNotIn(plugin.API_NAME, base_names)


class TestPluginModule(base.BaseTestCase):

    def test_versions(self):
        self.assertEqual('os_korora_api_version', plugin.API_VERSION_OPTION)
        self.assertEqual(v1.API_VERSION, plugin.DEFAULT_API_VERSION)
        self.assertIn(plugin.DEFAULT_API_VERSION, plugin.API_VERSIONS)

    def test_the_version_option_and_its_variable(self):
        parser = plugin.build_option_parser(argparse.ArgumentParser())
        self.assertEqual('1.0', parser.parse_args([]).os_korora_api_version)
        self.assertEqual('1.0', parser.parse_args(
            ['--os-korora-api-version', '1.0']).os_korora_api_version)
        self.useFixture(fixtures.EnvironmentVariable('OS_KORORA_API_VERSION',
                                                     'latest'))
        parser = plugin.build_option_parser(argparse.ArgumentParser())
        self.assertEqual('latest', parser.parse_args([]).os_korora_api_version)

    def test_the_verifier_key_option_and_its_variable(self):
        parser = plugin.build_option_parser(argparse.ArgumentParser())
        self.assertIsNone(parser.parse_args([]).os_korora_verifier_public_key)
        self.assertEqual('/etc/korora/verifier.pem', parser.parse_args(
            ['--os-korora-verifier-public-key', '/etc/korora/verifier.pem']
        ).os_korora_verifier_public_key)
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_KORORA_VERIFIER_PUBLIC_KEY', '/a.pem,/b.pem'))
        parser = plugin.build_option_parser(argparse.ArgumentParser())
        self.assertEqual('/a.pem,/b.pem', parser.parse_args(
            []).os_korora_verifier_public_key)
