#!/bin/bash
# devstack/plugin.sh - korora-nova's devstack plugin
#
# Secure live migration of vTPM instances: the vTPM manager beside each
# nova-compute, the verifier, TrustedVTPMFilter in nova-scheduler, the
# Korora compute driver and the libvirt hook. See
# doc/source/install/devstack.rst; the variables are in devstack/settings.
#
# What an operator also needs (the database schema, enrollment, policies,
# the libvirt hook) is done by korora-manage, as on a hand-made cloud;
# this file only wires it into devstack's phases.

# Save trace setting
_XTRACE_KORORA=$(set +o | grep xtrace)
set -o xtrace

KORORA_FILTER=TrustedVTPMFilter
KORORA_FILTER_PATH=korora_nova.filters.TrustedVTPMFilter
# Nova's own defaults, for a nova.conf that does not set them.
KORORA_NOVA_DEFAULT_FILTERS=ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter
KORORA_NOVA_DEFAULT_AVAILABLE_FILTERS=nova.scheduler.filters.all_filters


# Helpers
# -------

# korora_bin NAME - the path of an installed console script
function korora_bin {
    echo "$(get_python_exec_prefix)/$1"
}

# korora_manage ARGS - korora-manage with this node's korora.conf
function korora_manage {
    "$(korora_bin korora-manage)" --config-file "$KORORA_CONF" "$@"
}

# korora_host - this compute host's name, as nova-compute knows it
function korora_host {
    local host=$KORORA_HOST
    if [[ -z $host && -f $NOVA_CONF ]]; then
        host=$(iniget "$NOVA_CONF" DEFAULT host)
    fi
    echo "${host:-$(hostname)}"
}

# korora_policy_name - the reference policy recorded from this host
function korora_policy_name {
    echo "${KORORA_POLICY_NAME:-devstack-$(korora_host)}"
}

# korora_transport_url - the broker and virtual host of nova-compute
function korora_transport_url {
    local vhost=$KORORA_RPC_VHOST
    if [[ -z $vhost && ${CELLSV2_SETUP:-superconductor} != singleconductor ]]; then
        vhost=nova_cell${NOVA_CPU_CELL:-1}
    fi
    get_transport_url "$vhost"
}

function korora_database_url {
    database_connection_url "$KORORA_DATABASE_NAME"
}

# korora_tcti - [korora] tcti of this host's TPM
function korora_tcti {
    if is_service_enabled korora-swtpm; then
        echo "swtpm:host=127.0.0.1,port=$KORORA_SWTPM_PORT"
    else
        echo "device:$KORORA_TPM_DEVICE"
    fi
}

function korora_swtpm_dir {
    echo "$KORORA_STATE_DIR/swtpm"
}

function korora_swtpm_ca_dir {
    echo "$KORORA_STATE_DIR/swtpm-ca"
}

function korora_installs_libvirt_hook {
    is_service_enabled korora-vtpm-manager && is_service_enabled n-cpu &&
        [[ $KORORA_INSTALL_LIBVIRT_HOOK == True && ${VIRT_DRIVER:-libvirt} == libvirt ]]
}

# korora_restart_libvirt - libvirt reads its hooks folders only when it
# starts: restart the daemon that runs QEMU (or Xen) guests.
function korora_restart_libvirt {
    local daemon restarted=False
    for daemon in virtqemud virtxend; do
        if systemctl is-active --quiet "$daemon" 2>/dev/null; then
            restart_service "$daemon"
            restarted=True
        fi
    done
    if [[ $restarted == False ]]; then
        restart_service "${LIBVIRT_DAEMON:-libvirtd}"
    fi
}

# korora_wait_for_tpm - until the TPM answers tpm2_getcap
function korora_wait_for_tpm {
    local tcti deadline=$((SECONDS + KORORA_SERVICE_TIMEOUT))
    tcti=$(korora_tcti)
    until sudo tpm2_getcap -T "$tcti" properties-fixed >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die $LINENO "the TPM ($tcti) did not answer within $KORORA_SERVICE_TIMEOUT s"
        fi
        sleep 1
    done
}


# Phases
# ------

# install_korora_packages - distribution packages (pre-install)
function install_korora_packages {
    local packages=""
    if is_service_enabled korora-vtpm-manager; then
        # libvirt runs swtpm for guests' vTPMs; tpm2-tools checks the TPM.
        packages="swtpm swtpm-tools tpm2-tools"
    fi
    # tpm2-pytss builds against the TPM2 TSS.
    if is_ubuntu; then
        packages+=" libtss2-dev pkg-config"
    else
        packages+=" tpm2-tss-devel pkgconf-pkg-config"
    fi
    local package
    for package in $packages; do
        is_package_installed "$package" || install_package "$package"
    done
}

# install_korora - korora-nova itself (install)
function install_korora {
    # Editable, as Nova is: its nova/virt/korora (compute_driver =
    # korora.KororaDriver) is then found beside a Nova checkout too.
    setup_develop "$KORORA_DIR"
    if is_service_enabled n-cpu; then
        local python
        python="$(korora_bin python3)"
        [[ -x $python ]] || python=${PYTHON:-python3}
        "$python" -c 'import nova.virt.korora' ||
            die $LINENO "Nova cannot load korora.KororaDriver (nova.virt.korora)"
    fi
}

# configure_korora - korora.conf, the database, nova.conf, the software
# TPM and the libvirt hook (post-config: before Nova's services start)
function configure_korora {
    sudo install -d -o "$STACK_USER" -m 0755 "$KORORA_CONF_DIR"
    mkdir -p "$KORORA_STATE_DIR"
    chmod 0750 "$KORORA_STATE_DIR"

    if is_service_enabled korora-swtpm; then
        korora_make_software_tpm
        KORORA_EK_CA_BUNDLE=${KORORA_EK_CA_BUNDLE:-$(korora_swtpm_ca_dir)/ek-ca-bundle.pem}
    fi
    if is_service_enabled korora-vtpm-manager && [[ -z $KORORA_EK_CA_BUNDLE && $KORORA_TRUST_ON_FIRST_USE != True ]]; then
        die $LINENO "Set KORORA_EK_CA_BUNDLE (the CAs of your TPM's EK certificate) or KORORA_TRUST_ON_FIRST_USE=True"
    fi

    # A new file each stack, as devstack does with nova.conf.
    rm -f "$KORORA_CONF"
    touch "$KORORA_CONF"
    chmod 0640 "$KORORA_CONF"
    iniset "$KORORA_CONF" DEFAULT host "$(korora_host)"
    iniset "$KORORA_CONF" DEFAULT transport_url "$(korora_transport_url)"
    iniset "$KORORA_CONF" DEFAULT debug "${ENABLE_DEBUG_LOG_LEVEL:-True}"
    iniset "$KORORA_CONF" korora state_path "$KORORA_STATE_DIR"
    iniset "$KORORA_CONF" korora_database connection "$(korora_database_url)"
    # korora-vtpm-manager answers the libvirt hook there, from the
    # migration records of [korora_database]; korora-manage libvirt-hook
    # install writes the same path into the hook.
    iniset "$KORORA_CONF" korora libvirt_hook_socket "$KORORA_LIBVIRT_HOOK_SOCKET"
    if is_service_enabled korora-vtpm-manager; then
        iniset "$KORORA_CONF" korora tcti "$(korora_tcti)"
        if [[ -n $KORORA_EK_CA_BUNDLE ]]; then
            iniset "$KORORA_CONF" korora ek_ca_bundle "$KORORA_EK_CA_BUNDLE"
        fi
        if [[ -n $KORORA_PCR_SELECTION ]]; then
            iniset "$KORORA_CONF" korora pcr_selection "$KORORA_PCR_SELECTION"
        fi
    fi

    if is_service_enabled korora-verifier; then
        # shellcheck disable=SC2086 # a list of service names
        if is_service_enabled $DATABASE_BACKENDS; then
            recreate_database "$KORORA_DATABASE_NAME"
        fi
        korora_manage db sync || die $LINENO "korora-manage db sync failed"
    fi
    korora_make_policy_signing_key
    iniset "$KORORA_CONF" korora policy_signing_keys "$KORORA_CONF_DIR/policy-signing-key.pub.pem"
    if is_service_enabled n-sch; then
        configure_korora_scheduler
    fi
    if is_service_enabled korora-vtpm-manager && is_service_enabled n-cpu; then
        configure_korora_compute
    fi
    if korora_installs_libvirt_hook; then
        sudo "$(korora_bin korora-manage)" --config-file "$KORORA_CONF" \
            libvirt-hook install --hooks-dir "$KORORA_LIBVIRT_HOOKS_DIR" \
            --hypervisor "$KORORA_LIBVIRT_HOOK_HYPERVISOR" ||
            die $LINENO "korora-manage libvirt-hook install failed"
        korora_restart_libvirt
    fi
}

# korora_make_software_tpm - a TPM with EK certificates from a CA of its
# own, kept across stacks (demo only: it proves nothing about the host)
function korora_make_software_tpm {
    local tpm ca
    tpm=$(korora_swtpm_dir)
    ca=$(korora_swtpm_ca_dir)
    mkdir -p "$tpm" "$ca"
    cat > "$ca/swtpm-localca.conf" <<EOF
statedir = $ca
signingkey = $ca/signkey.pem
issuercert = $ca/issuercert.pem
certserial = $ca/certserial
EOF
    cat > "$ca/swtpm_setup.conf" <<EOF
create_certs_tool = swtpm_localca
create_certs_tool_config = $ca/swtpm-localca.conf
create_certs_tool_options = /etc/swtpm-localca.options
active_pcr_banks = sha256
EOF
    if [[ ! -f $tpm/tpm2-00.permall ]]; then
        swtpm_setup --tpm2 --tpmstate "$tpm" --create-ek-cert \
            --create-platform-cert --lock-nvram --config "$ca/swtpm_setup.conf" ||
            die $LINENO "swtpm_setup failed"
    fi
    cat "$ca/swtpm-localca-rootca-cert.pem" "$ca/issuercert.pem" > "$ca/ek-ca-bundle.pem"
}

# configure_korora_scheduler - TrustedVTPMFilter beside the filters
# devstack enabled (lib/nova sets NOVA_FILTERS itself, so the filter is
# added here, to nova.conf)
function configure_korora_scheduler {
    local enabled available values
    enabled=$(iniget "$NOVA_CONF" filter_scheduler enabled_filters)
    enabled=${enabled:-$KORORA_NOVA_DEFAULT_FILTERS}
    if [[ ",$enabled," != *",$KORORA_FILTER,"* ]]; then
        iniset "$NOVA_CONF" filter_scheduler enabled_filters "$enabled,$KORORA_FILTER"
    fi
    available=$(iniget_multiline "$NOVA_CONF" filter_scheduler available_filters)
    read -r -a values <<< "${available:-$KORORA_NOVA_DEFAULT_AVAILABLE_FILTERS}"
    if [[ " ${values[*]} " != *" $KORORA_FILTER_PATH "* ]]; then
        iniset_multiline "$NOVA_CONF" filter_scheduler available_filters \
            "${values[@]}" "$KORORA_FILTER_PATH"
    fi
    iniset "$NOVA_CONF" korora_database connection "$(korora_database_url)"
}

# configure_korora_compute - nova-compute runs Korora's driver. Written
# to nova.conf (which devstack copies to nova-cpu.conf when it starts
# nova-compute) and to nova-cpu.conf where it exists already.
function configure_korora_compute {
    local conf url
    url=$(korora_database_url)
    for conf in "$NOVA_CONF" "${NOVA_CPU_CONF:-}"; do
        [[ -n $conf && -f $conf ]] || continue
        iniset "$conf" DEFAULT compute_driver korora.KororaDriver
        iniset "$conf" korora base_compute_driver "$KORORA_BASE_COMPUTE_DRIVER"
        iniset "$conf" korora state_path "$KORORA_STATE_DIR"
        iniset "$conf" korora local_channel_key "$KORORA_STATE_DIR/local-channel.key"
        iniset "$conf" korora_database connection "$url"
        if [[ $KORORA_LIVE_MIGRATION_NATIVE_TLS == True ]]; then
            iniset "$conf" libvirt live_migration_with_native_tls True
        fi
        if [[ $KORORA_ALLOW_UNENCRYPTED_MIGRATION_STREAM == True ]]; then
            iniset "$conf" korora allow_unencrypted_migration_stream True
        fi
    done
    if [[ $KORORA_LIVE_MIGRATION_NATIVE_TLS != True && $KORORA_ALLOW_UNENCRYPTED_MIGRATION_STREAM != True ]]; then
        warn $LINENO "vTPM live migrations will be refused: their migration stream is not TLS-protected (see KORORA_LIVE_MIGRATION_NATIVE_TLS)"
    fi
}

# start_korora - the software TPM, the vTPM manager (and the host's
# enrollment and policy), the verifier (extra)
function start_korora {
    if is_service_enabled korora-swtpm; then
        run_process korora-swtpm "$(command -v swtpm) socket --tpm2 --tpmstate dir=$(korora_swtpm_dir) --server type=tcp,port=$KORORA_SWTPM_PORT,bindaddr=127.0.0.1 --ctrl type=tcp,port=$((KORORA_SWTPM_PORT + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear"
    fi
    if is_service_enabled korora-vtpm-manager; then
        korora_wait_for_tpm
        local group=""
        if ! is_service_enabled korora-swtpm; then
            # The TPM device is usually root:tss, mode 0660.
            group=$(stat -c %G "$KORORA_TPM_DEVICE")
        fi
        run_process korora-vtpm-manager "$(korora_bin korora-vtpm-manager) --config-file $KORORA_CONF" "$group"
        korora_enroll_host
    fi
    if is_service_enabled korora-verifier; then
        run_process korora-verifier "$(korora_bin korora-verifier) --config-file $KORORA_CONF"
    fi
}

# korora_make_policy_signing_key - the operator's EC P-256 key that signs
# the policies korora-manage records (kept once made); the verifier
# trusts its public half ([korora] policy_signing_keys)
function korora_make_policy_signing_key {
    local key=$KORORA_CONF_DIR/policy-signing-key.pem
    if [[ ! -f $key ]]; then
        (umask 077 && openssl ecparam -name prime256v1 -genkey -noout |
            openssl pkcs8 -topk8 -nocrypt -out "$key") ||
            die $LINENO "cannot make the policy signing key $key"
    fi
    openssl ec -in "$key" -pubout -out "$KORORA_CONF_DIR/policy-signing-key.pub.pem" 2>/dev/null ||
        die $LINENO "cannot write the public half of $key"
}

# korora_enroll_host - enroll this host, record its reference policy and
# attest it once, in the order doc/source/admin/host-trust.rst gives
function korora_enroll_host {
    local host policy deadline
    local args=()
    host=$(korora_host)
    policy=$(korora_policy_name)
    if ! korora_manage host show "$host" >/dev/null 2>&1; then
        if [[ $KORORA_TRUST_ON_FIRST_USE == True ]]; then
            args+=(--trust-on-first-use)
        fi
        # The vTPM manager answers once it has started.
        deadline=$((SECONDS + KORORA_SERVICE_TIMEOUT))
        until korora_manage host enroll "$host" "${args[@]}"; do
            if ((SECONDS >= deadline)); then
                die $LINENO "$host could not be enrolled within $KORORA_SERVICE_TIMEOUT s"
            fi
            sleep 2
        done
    fi
    if ! korora_manage policy show "$policy" >/dev/null 2>&1; then
        korora_manage policy record "$host" "$policy" \
            --signing-key "$KORORA_CONF_DIR/policy-signing-key.pem" ||
            die $LINENO "cannot record policy $policy from $host"
    fi
    korora_manage host set-policy "$host" "$policy" ||
        die $LINENO "cannot assign policy $policy to $host"
    korora_manage host attest "$host" ||
        die $LINENO "$host is not trusted (korora-manage host show $host)"
}

# korora_check_compute_driver - nova-compute's own file names Korora's
# driver (devstack makes nova-cpu.conf when it starts nova-compute)
function korora_check_compute_driver {
    local driver
    if [[ -n ${NOVA_CPU_CONF:-} && -f $NOVA_CPU_CONF ]]; then
        driver=$(iniget "$NOVA_CPU_CONF" DEFAULT compute_driver)
        if [[ $driver != korora.KororaDriver ]]; then
            die $LINENO "nova-compute runs ${driver:-its default driver}, not korora.KororaDriver ($NOVA_CPU_CONF)"
        fi
    fi
}

# check_korora - what the cloud now relies on (test-config)
function check_korora {
    if is_service_enabled korora-vtpm-manager; then
        korora_manage host show "$(korora_host)"
        if is_service_enabled n-cpu; then
            korora_check_compute_driver
        fi
    fi
    if korora_installs_libvirt_hook; then
        sudo "$(korora_bin korora-manage)" --config-file "$KORORA_CONF" \
            libvirt-hook status --hooks-dir "$KORORA_LIBVIRT_HOOKS_DIR" \
            --hypervisor "$KORORA_LIBVIRT_HOOK_HYPERVISOR" ||
            die $LINENO "the libvirt hook is not installed as configured"
    fi
}

# stop_korora - (unstack)
function stop_korora {
    local service
    for service in korora-verifier korora-vtpm-manager korora-swtpm; do
        stop_process "$service"
    done
}

# cleanup_korora - the libvirt hook, the database, the state (clean)
function cleanup_korora {
    local manage
    manage=$(korora_bin korora-manage)
    if korora_installs_libvirt_hook && [[ -x $manage ]]; then
        sudo "$manage" libvirt-hook remove \
            --hooks-dir "$KORORA_LIBVIRT_HOOKS_DIR" \
            --hypervisor "$KORORA_LIBVIRT_HOOK_HYPERVISOR" &&
            korora_restart_libvirt
    fi
    # shellcheck disable=SC2086 # a list of service names
    if is_service_enabled korora-verifier && is_service_enabled $DATABASE_BACKENDS; then
        korora_drop_database
    fi
    sudo rm -rf "$KORORA_STATE_DIR" "$KORORA_CONF_DIR"
}

function korora_drop_database {
    case ${DATABASE_TYPE:-} in
        mysql)
            mysql -u"$DATABASE_USER" -p"$DATABASE_PASSWORD" -h"$DATABASE_HOST" \
                -e "DROP DATABASE IF EXISTS $KORORA_DATABASE_NAME;" ||
                warn $LINENO "cannot drop database $KORORA_DATABASE_NAME"
            ;;
        postgresql)
            dropdb -h"$DATABASE_HOST" -U"$DATABASE_USER" --if-exists "$KORORA_DATABASE_NAME" ||
                warn $LINENO "cannot drop database $KORORA_DATABASE_NAME"
            ;;
        *)
            warn $LINENO "database $KORORA_DATABASE_NAME left on ${DATABASE_TYPE:-an unknown server}"
            ;;
    esac
}


# Dispatch
# --------

if is_service_enabled korora-vtpm-manager korora-verifier; then
    if [[ "$1" == "stack" && "$2" == "pre-install" ]]; then
        echo_summary "Installing korora-nova's packages"
        install_korora_packages
    elif [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing korora-nova"
        install_korora
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring korora-nova"
        configure_korora
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting korora-nova's services"
        start_korora
    elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
        echo_summary "Checking korora-nova"
        check_korora
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_korora
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_korora
    fi
fi

# Restore xtrace
$_XTRACE_KORORA
