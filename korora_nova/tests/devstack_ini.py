"""The INI edits devstack's iniset family makes, for the test shim of
devstack (korora_nova/tests/devstack_shim.sh).

Line-based like devstack's own functions, so a file keeps its layout
and several lines of one option (oslo.config's MultiStrOpt) are kept:

    set FILE SECTION OPTION VALUE      replace the option's lines in the
                                       section by one (create file and
                                       section when missing)
    get FILE SECTION OPTION            the option's first value
    get_multiline FILE SECTION OPTION  all its values, space-separated
    set_multiline FILE SECTION OPTION VALUE...
                                       one line per value, in order
    delete FILE SECTION OPTION         remove the option's lines
"""

import re
import sys

SECTION = re.compile(r'^\[(?P<name>[^\]]*)\]\s*$')


def _read(path):
    try:
        with open(path) as stream:
            return stream.read().splitlines()
    except FileNotFoundError:
        return []


def _write(path, lines):
    with open(path, 'w') as stream:
        stream.write('\n'.join(lines) + '\n')


def _option(line):
    """The option name of an 'option = value' line, else None."""
    if '=' not in line or line.lstrip().startswith(('#', ';', '[')):
        return None
    return line.split('=', 1)[0].strip()


def _section_range(lines, section):
    """(start, end) of the section's body, or None if it is missing."""
    start = None
    for index, line in enumerate(lines):
        match = SECTION.match(line)
        if match and start is not None:
            return start, index
        if match and match.group('name') == section:
            start = index + 1
    return None if start is None else (start, len(lines))


def get_values(lines, section, option):
    found = _section_range(lines, section)
    if found is None:
        return []
    return [lines[index].split('=', 1)[1].strip()
            for index in range(*found) if _option(lines[index]) == option]


def set_values(lines, section, option, values):
    found = _section_range(lines, section)
    new = ['%s = %s' % (option, value) for value in values]
    if found is None:
        return lines + ['', '[%s]' % section] + new
    start, end = found
    body = lines[start:end]
    positions = [index for index, line in enumerate(body)
                 if _option(line) == option]
    where = positions[0] if positions else 0
    body = [line for line in body if _option(line) != option]
    body[where:where] = new
    return lines[:start] + body + lines[end:]


def main(argv):
    command, path, section, option = argv[:4]
    lines = _read(path)
    if command == 'get':
        values = get_values(lines, section, option)
        print(values[0] if values else '')
    elif command == 'get_multiline':
        print(' '.join(get_values(lines, section, option)))
    elif command == 'set':
        _write(path, set_values(lines, section, option, argv[4:5]))
    elif command == 'set_multiline':
        _write(path, set_values(lines, section, option, argv[4:]))
    elif command == 'delete':
        if _section_range(lines, section) is not None:
            _write(path, set_values(lines, section, option, []))
    else:
        raise SystemExit('unknown command %r' % command)


if __name__ == '__main__':
    main(sys.argv[1:])
