"""One target under atheris (run by fuzz.run, one process per target).

    python -m fuzz.worker TARGET [libFuzzer arguments...]

The product's modules and the target are imported under atheris's
instrumentation, so coverage of the Python code steers the mutations.
"""

import logging
import sys

import atheris


def main():
    name, arguments = sys.argv[1], sys.argv[2:]
    # The product logs every refusal; millions of them are only noise.
    logging.disable(logging.CRITICAL)
    with atheris.instrument_imports(include=['korora_nova', 'fuzz']):
        from fuzz import common
        target = common.target(name)
    atheris.Setup([sys.argv[0]] + arguments, target.fuzz_one_input)
    atheris.Fuzz()


if __name__ == '__main__':
    main()
