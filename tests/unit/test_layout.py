"""The code's structure shows the trust boundary: checked, not hoped for.

Read from the source with ast (nothing is imported): which korora_nova
package imports which, at module level and inside functions alike.
"""

import ast
import os

import testtools

import korora_nova

ROOT = os.path.dirname(korora_nova.__file__)
PRODUCT = 'korora_nova'
TESTS = 'tests'
# The fuzz targets (fuzz/) call the product; the product never calls them.
FUZZ = 'fuzz'
# What runs on a compute host, which holds no database credentials.
COMPUTE_HOST_PACKAGES = ('korora_nova.hooks', 'korora_nova.vtpm_manager',
                         'korora_nova.libvirt_hook',
                         'korora_nova.direct_migration')
# What runs on a Xen dom0, where Nova 34 cannot run.
XEN_HOST_PACKAGES = ('korora_nova.direct_migration',
                     'korora_nova.vtpm_manager', 'korora_nova.libvirt_hook')
DATABASE_MODULES = ('korora_nova.db', 'korora_nova.migration.records',
                    'korora_nova.migration.audit', 'oslo_db', 'sqlalchemy')
# The compute driver's factory switches the database off in
# nova-compute: the one place on a compute host that names it.
DATABASE_SWITCH = ('korora_nova.hooks.driver', 'korora_nova.db')
# All SQL is in the database package (as Nova's nova.db.main.api): the
# rest of the code calls korora_nova.db.api, never a query or a model.
DATABASE_PACKAGE = 'korora_nova.db'
SQL_MODULES = ('sqlalchemy', 'korora_nova.db.models')


def module_name(path):
    relative = os.path.relpath(path, os.path.dirname(ROOT))
    name = relative[:-len('.py')].replace(os.sep, '.')
    return name[:-len('.__init__')] if name.endswith('.__init__') else name


def product_modules():
    """{module name: path} of every product module (tests excluded)."""
    found = {}
    for folder, _dirs, files in os.walk(ROOT):
        for file_name in files:
            if file_name.endswith('.py'):
                path = os.path.join(folder, file_name)
                name = module_name(path)
                if name != TESTS and not name.startswith(TESTS + '.'):
                    found[name] = path
    return found


def imports_of(path, name):
    """(imported module, at module level?) for every import in path."""
    with open(path, encoding='utf-8') as source:
        tree = ast.parse(source.read(), path)
    top_level = {id(node) for node in tree.body}
    found = []
    package = name if path.endswith('__init__.py') else name.rpartition(
        '.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package.split('.')
                parent = parent[:len(parent) - node.level + 1]
                base = '.'.join(parent + ([base] if base else []))
            targets = [base] + ['%s.%s' % (base, alias.name)
                                for alias in node.names]
        else:
            continue
        found.extend((target, id(node) in top_level) for target in targets)
    return found


def is_module(target, modules):
    """Is target one of modules, or inside one?"""
    return any(target == module or target.startswith(module + '.')
               for module in modules)


def package_of(module):
    """korora_nova.<first part>: the unit whose cycles count."""
    parts = module.split('.')
    return '.'.join(parts[:2]) if parts[0] == PRODUCT else None


class TestLayout(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.modules = product_modules()
        self.imports = {name: imports_of(path, name)
                        for name, path in self.modules.items()}

    def test_no_import_cycle_between_packages(self):
        graph = {}
        for name, found in self.imports.items():
            source = package_of(name)
            for target, _top in found:
                target_package = package_of(target)
                if target_package and target_package != source and (
                        target_package in {package_of(m)
                                           for m in self.modules}):
                    graph.setdefault(source, set()).add(target_package)
        cycles = []

        def visit(node, path):
            for nxt in sorted(graph.get(node, ())):
                if nxt in path:
                    cycle = path[path.index(nxt):] + [nxt]
                    if cycle not in cycles:
                        cycles.append(cycle)
                elif len(path) < len(graph) + 1:
                    visit(nxt, path + [nxt])

        for start in sorted(graph):
            visit(start, [start])
        self.assertEqual([], [' -> '.join(c) for c in cycles])

    def test_no_product_module_imports_the_tests(self):
        offenders = sorted(
            '%s imports %s' % (name, target)
            for name, found in self.imports.items()
            for target, _top in found
            if target == TESTS or target.startswith(TESTS + '.'))
        self.assertEqual([], offenders)

    def test_no_product_module_imports_the_fuzzers(self):
        offenders = sorted(
            '%s imports %s' % (name, target)
            for name, found in self.imports.items()
            for target, _top in found
            if target == FUZZ or target.startswith(FUZZ + '.'))
        self.assertEqual([], offenders)

    def test_conf_is_a_leaf(self):
        offenders = sorted(
            '%s imports %s' % (name, target)
            for name, found in self.imports.items()
            if name.startswith('korora_nova.conf')
            for target, _top in found
            if target.startswith(PRODUCT + '.') and
            not target.startswith('korora_nova.conf'))
        self.assertEqual([], offenders)

    def test_exception_is_a_leaf(self):
        # Every package raises its errors: exception imports none of them.
        offenders = sorted(
            'korora_nova.exception imports %s' % target
            for target, _top in self.imports['korora_nova.exception']
            if target == PRODUCT or target.startswith(PRODUCT + '.'))
        self.assertEqual([], offenders)

    def test_compute_host_code_never_imports_the_database(self):
        offenders = []
        for name, found in self.imports.items():
            if not name.startswith(COMPUTE_HOST_PACKAGES):
                continue
            for target, _top in found:
                if name == DATABASE_SWITCH[0] and target.startswith(
                        DATABASE_SWITCH[1]):
                    continue
                if target.startswith(DATABASE_MODULES):
                    offenders.append('%s imports %s' % (name, target))
        self.assertEqual([], sorted(offenders))

    def test_the_api_never_imports_compute_host_code(self):
        offenders = sorted(
            '%s imports %s' % (name, target)
            for name, found in self.imports.items()
            if is_module(name, ['korora_nova.api'])
            for target, _top in found
            if is_module(target, COMPUTE_HOST_PACKAGES))
        self.assertEqual([], offenders)

    def test_only_the_database_package_speaks_sql(self):
        offenders = sorted(
            '%s imports %s' % (name, target)
            for name, found in self.imports.items()
            if not is_module(name, [DATABASE_PACKAGE])
            for target, _top in found
            if is_module(target, SQL_MODULES))
        self.assertEqual([], offenders)

    def test_xen_host_code_needs_no_nova(self):
        # Everything it imports, however indirectly, runs without Nova.
        seen, todo, offenders = set(), [], []
        for name in self.modules:
            if is_module(name, XEN_HOST_PACKAGES):
                todo.append((name, name))
        while todo:
            name, via = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for target, _top in self.imports.get(name, ()):
                if is_module(target, ['nova']):
                    offenders.append('%s imports %s (from %s)'
                                     % (name, target, via))
                elif target in self.modules:
                    todo.append((target, via))
        self.assertEqual([], sorted(offenders))

    def test_the_checks_see_imports(self):
        # A cross-check that the reader works: the driver imports the
        # protocol, the verifier the database, the database SQL.
        driver = [t for t, _ in self.imports['korora_nova.hooks.driver']]
        self.assertIn('korora_nova.hooks.protocol', driver)
        verifier = [t for t, _ in
                    self.imports['korora_nova.verifier.migrations']]
        self.assertIn('korora_nova.db.api', verifier)
        database = [t for t, _ in self.imports['korora_nova.db.api']]
        self.assertIn('sqlalchemy', database)
        self.assertIn('korora_nova.db.models', database)
