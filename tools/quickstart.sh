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

run_tests() {
    local log
    log=$(mktemp)
    set +e
    "$venv/bin/stestr" run "$@" 2>&1 | tee "$log"
    local status=${PIPESTATUS[0]}
    set -e
    # stestr prints " - Passed: N"; say it on one plain closing line, with
    # skips counted apart from passes.
    local passed failed skipped
    passed=$(awk '/^ - Passed:/ {print $3}' "$log" | tail -1)
    failed=$(awk '/^ - Failed:/ {print $3}' "$log" | tail -1)
    skipped=$(awk '/^ - Skipped:/ {print $3}' "$log" | tail -1)
    rm -f "$log"
    echo "Totals: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
    if [ "$status" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then
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
