"""Sphinx configuration of korora-nova's documentation."""

extensions = [
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
]
config_generator_config_file = (
    '../../etc/korora/korora-config-generator.conf')
sample_config_basename = '_static/korora'

project = 'korora-nova'
copyright = '2026, korora-nova developers'
master_doc = 'index'
exclude_patterns = []
html_theme = 'alabaster'
html_static_path = ['_static']
