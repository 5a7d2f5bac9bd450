#!/bin/bash
# A stand-in for the devstack functions korora-nova's plugin calls, so
# that its phases run under bash on a machine without devstack.
#
# Calls that would change the machine (packages, pip, databases, system
# services) are recorded, one tab-separated line each, in $SHIM_LOG.
# What Korora itself does runs for real: korora-manage from the test's
# Python (get_python_exec_prefix), the verifier database as SQLite files
# in $SHIM_DB_DIR, and run_process starts the command in the background
# (its pid in $SHIM_RUN_DIR/SERVICE.pid, its output in SERVICE.log),
# as devstack's systemd units would.
#
# The ini functions are devstack's own (inc/ini-config) when
# $DEVSTACK_DIR names a devstack checkout, else the equivalents of
# korora_nova/tests/devstack_ini.py.
#
# Inputs: ENABLED_SERVICES (comma-separated), SHIM_LOG, SHIM_DB_DIR,
# SHIM_RUN_DIR, SHIM_BIN_DIR, SHIM_PYTHON, SHIM_RABBIT_URL (ends in /).

function shim_record {
    local IFS=$'\t'
    echo "$*" >> "$SHIM_LOG"
}

# Services

function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ,$ENABLED_SERVICES, == *,$service,* ]] && return 0
    done
    return 1
}

function enable_service {
    local service
    for service in "$@"; do
        is_service_enabled "$service" || ENABLED_SERVICES+=,$service
    done
}

function run_process {
    local service=$1 command=$2 group=${3:-} user=${4:-}
    is_service_enabled "$service" || return 0
    shim_record run_process "$service" "$command" "$group" "$user"
    # The unit's command line, as devstack hands it to systemd.
    setsid bash -c "exec $command" > "$SHIM_RUN_DIR/$service.log" 2>&1 < /dev/null &
    echo $! > "$SHIM_RUN_DIR/$service.pid"
}

function stop_process {
    local service=$1 pid
    shim_record stop_process "$service"
    [[ -f $SHIM_RUN_DIR/$service.pid ]] || return 0
    pid=$(cat "$SHIM_RUN_DIR/$service.pid")
    kill "$pid" 2> /dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2> /dev/null || true
    rm -f "$SHIM_RUN_DIR/$service.pid"
}

function restart_service {
    shim_record restart_service "$@"
}

function systemctl {
    shim_record systemctl "$@"
    return 3        # "inactive", as for a unit that does not run
}

# Packages and Python

function is_ubuntu {
    return 0
}

function is_package_installed {
    dpkg-query -W -f='${Status}' "$@" 2> /dev/null | grep -q 'install ok installed'
}

function install_package {
    shim_record install_package "$@"
}

function setup_develop {
    shim_record setup_develop "$@"
}

function get_python_exec_prefix {
    echo "$SHIM_BIN_DIR"
}

# Database and message bus

function database_connection_url {
    echo "sqlite:///$SHIM_DB_DIR/$1.sqlite"
}

function recreate_database {
    shim_record recreate_database "$@"
    rm -f "$SHIM_DB_DIR/$1.sqlite"
}

function get_transport_url {
    echo "${SHIM_RABBIT_URL}${1:-}"
}

# Output and privileges

function echo_summary {
    echo "$@"
}

function die {
    local line=$1
    shift
    shim_record die "$line" "$*"
    echo "[ERROR] plugin line $line: $*" >&2
    exit 1
}

# As devstack's: returns the status of the command before it, so that
# "command || warn ..." still fails under errexit.
function warn {
    local status=$? line=$1
    shift
    shim_record warn "$line" "$*"
    echo "WARNING: plugin line $line: $*" >&2
    return $status
}

function sudo {
    shim_record sudo "$@"
    "$@"
}

function trueorfalse {
    local default=$1 value=${!2:-}
    case ${value,,} in
        1|yes|true) echo True ;;
        0|no|false) echo False ;;
        *) echo "$default" ;;
    esac
}

# ini files

# Run as a file, not as a module: the package would import Nova.
SHIM_INI=$(dirname "${BASH_SOURCE[0]}")/devstack_ini.py

if [[ -n ${DEVSTACK_DIR:-} && -f $DEVSTACK_DIR/inc/ini-config ]]; then
    # shellcheck source=/dev/null
    source "$DEVSTACK_DIR/inc/ini-config"
else
    function iniset {
        [[ $1 == -sudo ]] && shift
        "$SHIM_PYTHON" "$SHIM_INI" set "$@"
    }
    function iniget {
        "$SHIM_PYTHON" "$SHIM_INI" get "$@"
    }
    function iniget_multiline {
        "$SHIM_PYTHON" "$SHIM_INI" get_multiline "$@"
    }
    function iniset_multiline {
        [[ $1 == -sudo ]] && shift
        "$SHIM_PYTHON" "$SHIM_INI" set_multiline "$@"
    }
    function inidelete {
        [[ $1 == -sudo ]] && shift
        "$SHIM_PYTHON" "$SHIM_INI" delete "$@"
    }
fi
