#!/usr/bin/env bash
# The README's quick start: `demo` runs the main job, `test` the whole test
# suite. Run as root on Debian 12; each installs what it needs (Debian
# packages from bindep.txt, a virtualenv in .venv) and is safe to run again.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
venv="$here/.venv"

usage() {
    echo "usage: $0 demo|test [stestr filter...]" >&2
    exit 2
}

install_packages() {
    # bindep.txt lines look like "swtpm [platform:dpkg]".
    local wanted missing=()
    wanted=$(sed -e 's/#.*//' -e 's/\[.*\]//' bindep.txt | awk 'NF {print $1}')
    for package in $wanted; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null \
            | grep -q 'install ok installed' || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

install_python() {
    # $@: requirement files. A stamp of their content skips a second run.
    local stamp="$venv/.korora-installed" digest
    digest=$(cat "$@" upper-constraints.txt setup.cfg | sha256sum | cut -c1-64)
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
        echo "Installing Python packages into $venv (a few minutes the first time)"
        "$venv/bin/pip" install -q --upgrade pip >/dev/null
        local args=()
        for file in "$@"; do args+=(-r "$file"); done
        "$venv/bin/pip" install -q -c upper-constraints.txt "${args[@]}" -e .
        echo "$digest" > "$stamp"
    fi
}

# The Xen bed's class: two dom0s under QEMU TCG, booted once for the
# class, so stestr gives all of it to one worker.
XEN_TESTS='tests\.functional\.test_xen_hosts'

run_stestr() {
    # $1: where the output goes too; the rest: stestr's arguments.
    local log=$1
    shift
    "$venv/bin/stestr" "$@" 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
}

count() {
    # stestr prints " - Passed: N" (and Failed, Skipped); N of $1 in $2.
    awk -v key="$1" '$1 == "-" && $2 == key ":" {n = $3} END {print n + 0}' "$2"
}

run_tests() {
    local main xen status=0 xen_status=0
    main=$(mktemp)
    xen=$(mktemp)
    set +e
    if [ $# -eq 0 ]; then
        # The Xen class runs after the rest, from a stestr repository of
        # its own: its two dom0s under QEMU TCG take both cores, and the
        # rest of the suite beside them missed its own time limits.
        run_stestr "$main" run --exclude-regex "$XEN_TESTS"
        status=$?
        mkdir -p .stestr-xen
        run_stestr "$xen" --repo-url .stestr-xen run --concurrency 1 \
            "$XEN_TESTS"
        xen_status=$?
    else
        run_stestr "$main" run "$@"
        status=$?
    fi
    set -e
    # One plain closing line, with skips counted apart from passes.
    local passed failed skipped
    passed=$(( $(count Passed "$main") + $(count Passed "$xen") ))
    failed=$(( $(count Failed "$main") + $(count Failed "$xen") ))
    skipped=$(( $(count Skipped "$main") + $(count Skipped "$xen") ))
    rm -f "$main" "$xen"
    echo "Totals: $passed passed, $failed failed, $skipped skipped"
    if [ "$status" -ne 0 ] || [ "$xen_status" -ne 0 ] || [ "$passed" -eq 0 ]; then
        exit 1
    fi
}

[ $# -ge 1 ] || usage
command=$1
shift
install_packages
case "$command" in
    demo)
        # The demo runs Nova's own services with Nova's functional test
        # harness: it needs the test requirements too.
        install_python requirements.txt test-requirements.txt
        exec "$venv/bin/korora-demo" "$@"
        ;;
    test)
        install_python requirements.txt test-requirements.txt
        run_tests "$@"
        ;;
    *)
        usage
        ;;
esac
