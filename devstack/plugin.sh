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
# The services that run from korora-nova's own units (etc/systemd/,
# korora_start_unit): stopped at unstack, their units removed at clean.
# A new one is a start_korora_SERVICE function and its name here.
KORORA_UNIT_SERVICES="korora-verifier korora-vtpm-manager"


# Helpers
# -------

# korora_bin NAME - the path of an installed console script
function korora_bin {
    echo "$(get_python_exec_prefix)/$1"
}

# korora_manage ARGS - korora-manage as the control plane runs it: with
# the verifier's file (its database and signing key)
function korora_manage {
    "$(korora_bin korora-manage)" --config-file "$KORORA_VERIFIER_CONF" "$@"
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
        if $SYSTEMCTL is-active --quiet "$daemon" 2>/dev/null; then
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


# korora_check_awk - devstack's meta-config functions (merge_config_group,
# which applies local.conf's [[post-config|...]] sections) need GNU awk:
# under mawk, Debian's default, they apply nothing and say nothing.
# devstack installs gawk (files/debs/general) before this phase.
function korora_check_awk {
    local awk=${CONFIG_AWK_CMD:-awk}
    if [[ $($awk --version 2>/dev/null) != "GNU Awk"* ]]; then
        die $LINENO "$awk is not GNU awk: devstack would not apply local.conf's post-config sections (install gawk)"
    fi
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

# configure_korora - the configuration files, the signing key, the
# database, nova.conf, the software TPM and the libvirt hook
# (post-config: before Nova's services start)
#
# The trust boundary decides what goes where: only the verifier's file
# ($KORORA_VERIFIER_CONF, for korora-verifier and korora-manage) and
# nova-scheduler's ($KORORA_SCHEDULER_CONF) hold [korora_database]
# credentials; the vTPM manager's korora.conf and nova-compute's
# nova-cpu.conf hold none (both refuse to start with one) and pin the
# verifier's public keys instead.
function configure_korora {
    sudo install -d -o "$STACK_USER" -m 0755 "$KORORA_CONF_DIR"
    mkdir -p "$KORORA_STATE_DIR"
    chmod 0750 "$KORORA_STATE_DIR"

    if is_service_enabled korora-swtpm; then
        korora_make_software_tpm
        KORORA_EK_CA_BUNDLE=${KORORA_EK_CA_BUNDLE:-$(korora_swtpm_ca_dir)/ek-ca-bundle.pem}
    fi
    # The verifier checks the EK certificates when it enrolls a host.
    if is_service_enabled korora-verifier && [[ -z $KORORA_EK_CA_BUNDLE && $KORORA_TRUST_ON_FIRST_USE != True ]]; then
        die $LINENO "Set KORORA_EK_CA_BUNDLE (the CAs of your TPMs' EK certificates) or KORORA_TRUST_ON_FIRST_USE=True"
    fi

    if is_service_enabled korora-verifier; then
        configure_korora_verifier
        korora_make_signing_key
        # shellcheck disable=SC2086 # a list of service names
        if is_service_enabled $DATABASE_BACKENDS; then
            recreate_database "$KORORA_DATABASE_NAME"
        fi
        korora_manage db sync || die $LINENO "korora-manage db sync failed"
    fi
    if is_service_enabled korora-api; then
        configure_korora_api
    fi
    if is_service_enabled korora-vtpm-manager; then
        korora_check_public_keys
        configure_korora_manager
    fi
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

# korora_public_keys - [korora] verifier_public_keys, one path a word
function korora_public_keys {
    local IFS=,
    # shellcheck disable=SC2086 # split on the commas
    echo $KORORA_VERIFIER_PUBLIC_KEYS
}

# korora_check_public_keys - every pinned public key is there: on a
# compute node without the verifier, copied from the verifier's node
function korora_check_public_keys {
    local key
    for key in $(korora_public_keys); do
        if [[ ! -f $key ]]; then
            die $LINENO "the verifier's public key $key is missing: copy $KORORA_VERIFIER_PUBLIC_KEY from the node of korora-verifier (or set KORORA_VERIFIER_PUBLIC_KEYS)"
        fi
    done
}

# korora_make_signing_key - the verifier's EC P-256 key and its public
# half, made at the first stack and kept afterwards: every host pins the
# public key, so a new key would break them all
function korora_make_signing_key {
    korora_make_key_pair "$KORORA_VERIFIER_SIGNING_KEY" "$KORORA_VERIFIER_PUBLIC_KEY"
}

# korora_make_key_pair PRIVATE PUBLIC [verifier|api] - an EC P-256 key
# (mode 0600) and its public half, made once and kept
function korora_make_key_pair {
    local private=$1 public=$2 user=${3:-verifier}
    if [[ ! -f $private ]]; then
        rm -f "$public"
        # Refuses to overwrite a file; writes the key with mode 0600.
        korora_manage signing-key create --for "$user" --path "$private" --public "$public" ||
            die $LINENO "korora-manage signing-key create failed"
    elif [[ ! -f $public ]]; then
        openssl pkey -in "$private" -pubout -out "$public" ||
            die $LINENO "cannot write the public key $public of $private"
    fi
    chmod 0600 "$private"
    chmod 0644 "$public"
}

# korora_write_common FILE - what every korora process reads
function korora_write_common {
    local conf=$1
    iniset "$conf" DEFAULT host "$(korora_host)"
    iniset "$conf" DEFAULT transport_url "$(korora_transport_url)"
    iniset "$conf" DEFAULT debug "${ENABLE_DEBUG_LOG_LEVEL:-True}"
    iniset "$conf" korora state_path "$KORORA_STATE_DIR"
    iniset "$conf" korora verifier_public_keys "$KORORA_VERIFIER_PUBLIC_KEYS"
    if [[ -n $KORORA_PCR_SELECTION ]]; then
        iniset "$conf" korora pcr_selection "$KORORA_PCR_SELECTION"
    fi
}

# korora_new_file FILE MODE - an empty file each stack, as devstack does
# with nova.conf
function korora_new_file {
    rm -f "$1"
    touch "$1"
    chmod "$2" "$1"
}

# configure_korora_api - korora-api's file (the database, read by it
# only; Keystone's auth_token; its signing key, which the verifier's file
# trusts), its uWSGI file behind Apache at /korora, its Keystone service
# user, service and endpoint; the Horizon plugin when Horizon runs here
function configure_korora_api {
    if ! is_service_enabled korora-verifier; then
        die $LINENO "korora-api runs on the node of korora-verifier (it reads the verifier's database, and the verifier must trust its key): enable korora-verifier here too"
    fi
    korora_make_key_pair "$KORORA_API_SIGNING_KEY" "$KORORA_API_PUBLIC_KEY" api
    iniset "$KORORA_VERIFIER_CONF" korora api_public_keys "$KORORA_API_PUBLIC_KEY"
    korora_new_file "$KORORA_API_CONF" 0600
    korora_write_common "$KORORA_API_CONF"
    iniset "$KORORA_API_CONF" korora_database connection "$(korora_database_url)"
    iniset "$KORORA_API_CONF" korora_api signing_key "$KORORA_API_SIGNING_KEY"
    iniset "$KORORA_API_CONF" korora policy_signing_keys "$KORORA_CONF_DIR/policy-signing-key.pub.pem"
    configure_keystone_authtoken_middleware "$KORORA_API_CONF" korora
    write_uwsgi_config "$KORORA_API_UWSGI_CONF" "$KORORA_API_UWSGI" "/korora" "" "korora-api"
    create_service_user korora
    get_or_create_service korora korora "Korora: attested live migration of vTPM instances"
    get_or_create_endpoint korora "$REGION_NAME" "$KORORA_API_URL"
    if is_service_enabled horizon; then
        configure_korora_horizon
    fi
}

# configure_korora_horizon - the plugin's panels (enabled/) and its
# settings snippet (local_settings.d/), before devstack's init_horizon
# collects and compresses Horizon's static files
function configure_korora_horizon {
    local file copied=False
    install -d -m 0755 "$KORORA_HORIZON_LOCAL_DIR/enabled" "$KORORA_HORIZON_LOCAL_DIR/local_settings.d"
    for file in $(korora_horizon_files); do
        install -m 0644 "$KORORA_DIR/korora_nova/dashboard/${file#"$KORORA_HORIZON_LOCAL_DIR"/}" "$file"
        copied=True
    done
    if [[ $copied != True ]]; then
        die $LINENO "the Horizon plugin's files are missing from $KORORA_DIR/korora_nova/dashboard"
    fi
    korora_horizon_keys_settings > "$KORORA_HORIZON_KEYS_SETTINGS"
}

# korora_horizon_keys_settings - Horizon's KORORA_VERIFIER_PUBLIC_KEYS,
# the verifier's public keys ([korora] verifier_public_keys)
function korora_horizon_keys_settings {
    local key
    echo "# Written by korora-nova's devstack plugin: a host's quote and an"
    echo "# audit anchor are believed only when one of these keys signed them."
    echo "KORORA_VERIFIER_PUBLIC_KEYS = ["
    for key in $(korora_public_keys); do
        echo "    '$key',"
    done
    echo "]"
}

# korora_horizon_files - where the plugin's files go in Horizon's local
# folder: korora_nova/dashboard/{enabled,local_settings.d}/_9*.py there
function korora_horizon_files {
    local dashboard=$KORORA_DIR/korora_nova/dashboard file
    for file in "$dashboard"/enabled/_9*.py "$dashboard"/local_settings.d/_9*.py; do
        [[ -f $file ]] || continue
        echo "$KORORA_HORIZON_LOCAL_DIR/${file#"$dashboard"/}"
    done
}

# configure_korora_verifier - the control plane's file: the database,
# the signing key, the EK CAs (korora-verifier, korora-manage)
function configure_korora_verifier {
    korora_new_file "$KORORA_VERIFIER_CONF" 0600
    korora_write_common "$KORORA_VERIFIER_CONF"
    iniset "$KORORA_VERIFIER_CONF" korora verifier_signing_key "$KORORA_VERIFIER_SIGNING_KEY"
    if [[ -n $KORORA_EK_CA_BUNDLE ]]; then
        iniset "$KORORA_VERIFIER_CONF" korora ek_ca_bundle "$KORORA_EK_CA_BUNDLE"
    fi
    iniset "$KORORA_VERIFIER_CONF" korora_database connection "$(korora_database_url)"
    # The operator's key that signs reference policies; the verifier
    # trusts only policies signed by it.
    korora_make_policy_signing_key
    iniset "$KORORA_VERIFIER_CONF" korora policy_signing_keys "$KORORA_CONF_DIR/policy-signing-key.pub.pem"
}

# configure_korora_manager - the compute host's korora.conf: no database,
# the pinned public keys, the TPM, the socket nova-compute and the hook
# call, and the libvirt the manager measures instances in
function configure_korora_manager {
    korora_new_file "$KORORA_CONF" 0640
    korora_write_common "$KORORA_CONF"
    iniset "$KORORA_CONF" korora tcti "$(korora_tcti)"
    iniset "$KORORA_CONF" korora libvirt_hook_socket "$KORORA_LIBVIRT_HOOK_SOCKET"
    iniset "$KORORA_CONF" korora instance_state_backend "$KORORA_INSTANCE_STATE_BACKEND"
    iniset "$KORORA_CONF" korora libvirt_uri "$KORORA_LIBVIRT_URI"
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

# korora_add_filter - TrustedVTPMFilter in nova.conf's enabled_filters,
# beside the filters already there (lib/nova writes NOVA_FILTERS), and
# its path in available_filters; prints "added" when it changed either
function korora_add_filter {
    local enabled available values
    enabled=$(iniget "$NOVA_CONF" filter_scheduler enabled_filters)
    enabled=${enabled:-$KORORA_NOVA_DEFAULT_FILTERS}
    if [[ ",$enabled," != *",$KORORA_FILTER,"* ]]; then
        iniset "$NOVA_CONF" filter_scheduler enabled_filters "$enabled,$KORORA_FILTER"
        echo added
    fi
    available=$(iniget_multiline "$NOVA_CONF" filter_scheduler available_filters)
    read -r -a values <<< "${available:-$KORORA_NOVA_DEFAULT_AVAILABLE_FILTERS}"
    if [[ " ${values[*]} " != *" $KORORA_FILTER_PATH "* ]]; then
        iniset_multiline "$NOVA_CONF" filter_scheduler available_filters \
            "${values[@]}" "$KORORA_FILTER_PATH"
        echo added
    fi
}

# configure_korora_scheduler - TrustedVTPMFilter in nova.conf, and the
# filter's read of the verifier's database in a file nova-scheduler
# alone reads
function configure_korora_scheduler {
    korora_add_filter >/dev/null
    # Not in nova.conf: devstack makes nova-cpu.conf from nova.conf, and
    # nova-compute refuses to start with [korora_database] credentials.
    # oslo.config reads /etc/nova/nova-scheduler.conf.d/*.conf after
    # nova-scheduler's --config-file, and no other Nova service does.
    inidelete "$NOVA_CONF" korora_database connection
    sudo install -d -o "$STACK_USER" -m 0755 "$(dirname "$KORORA_SCHEDULER_CONF")"
    korora_new_file "$KORORA_SCHEDULER_CONF" 0600
    iniset "$KORORA_SCHEDULER_CONF" korora_database connection "$(korora_scheduler_database_url)"
}

# korora_keep_filter - devstack merges local.conf's post-config after
# the plugin's post-config, and an enabled_filters list there replaces
# the plugin's: add the filter back (extra, the first phase after the
# merge), and restart nova-scheduler, which start_nova started on the
# list without it
function korora_keep_filter {
    if [[ -n $(korora_add_filter) ]]; then
        warn $LINENO "local.conf's [filter_scheduler] of $NOVA_CONF left out $KORORA_FILTER: added it back, restarting nova-scheduler" || true
        if $SYSTEMCTL is-enabled devstack@n-sch.service >/dev/null 2>&1; then
            $SYSTEMCTL restart devstack@n-sch.service
        fi
    fi
}

# korora_scheduler_database_url - the filter's account (see "Database
# accounts per host role" in doc/source/install/manual.rst): read-only
# on host_trust when KORORA_SCHEDULER_DATABASE_URL names one
function korora_scheduler_database_url {
    echo "${KORORA_SCHEDULER_DATABASE_URL:-$(korora_database_url)}"
}

# configure_korora_compute - nova-compute runs Korora's driver. Written
# to nova.conf (which devstack copies to nova-cpu.conf when it starts
# nova-compute) and to nova-cpu.conf where it exists already. No
# [korora_database]: nova-compute talks to its own vTPM manager on the
# manager's socket and believes the verifier's signed answers only.
function configure_korora_compute {
    local conf
    for conf in "$NOVA_CONF" "${NOVA_CPU_CONF:-}"; do
        [[ -n $conf && -f $conf ]] || continue
        iniset "$conf" DEFAULT compute_driver korora.KororaDriver
        iniset "$conf" korora base_compute_driver "$KORORA_BASE_COMPUTE_DRIVER"
        iniset "$conf" korora state_path "$KORORA_STATE_DIR"
        iniset "$conf" korora verifier_public_keys "$KORORA_VERIFIER_PUBLIC_KEYS"
        iniset "$conf" korora libvirt_hook_socket "$KORORA_LIBVIRT_HOOK_SOCKET"
        inidelete "$conf" korora_database connection
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
# enrollment and policy), the verifier (extra): one function a service
function start_korora {
    if is_service_enabled korora-swtpm; then
        start_korora_swtpm
    fi
    if is_service_enabled korora-vtpm-manager; then
        start_korora_vtpm_manager
    fi
    if is_service_enabled korora-verifier; then
        start_korora_verifier
    fi
    if is_service_enabled korora-api; then
        start_korora_api
    fi
}

# start_korora_swtpm - the software TPM, as devstack's plain unit
function start_korora_swtpm {
    run_process korora-swtpm "$(command -v swtpm) socket --tpm2 --tpmstate dir=$(korora_swtpm_dir) --server type=tcp,port=$KORORA_SWTPM_PORT,bindaddr=127.0.0.1 --ctrl type=tcp,port=$((KORORA_SWTPM_PORT + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear"
}

# start_korora_vtpm_manager - the vTPM manager once the TPM answers,
# then this host's enrollment where the verifier's credentials are
function start_korora_vtpm_manager {
    korora_wait_for_tpm
    local group=""
    if ! is_service_enabled korora-swtpm; then
        # The TPM device is usually root:tss, mode 0660.
        group=$(stat -c %G "$KORORA_TPM_DEVICE")
    fi
    korora_start_unit korora-vtpm-manager "$(korora_bin korora-vtpm-manager) --config-file $KORORA_CONF" "$group"
    if is_service_enabled korora-verifier; then
        korora_enroll_host
    else
        # No credentials here: the control plane enrolls this host.
        local commands
        commands=$(korora_enroll_commands)
        warn $LINENO "$(korora_host) is not enrolled yet: on the node of korora-verifier run $commands" || true
    fi
}

function start_korora_verifier {
    korora_start_unit korora-verifier "$(korora_bin korora-verifier) --config-file $KORORA_VERIFIER_CONF"
}

# start_korora_api - korora-api under uWSGI, as devstack runs Placement;
# its unit's environment names its file (not korora.conf, the manager's)
function start_korora_api {
    run_process korora-api "$(which uwsgi) --procname-prefix korora-api --ini $KORORA_API_UWSGI_CONF" \
        "" "" "OS_KORORA_CONFIG_FILES=$KORORA_API_CONF"
    if ! wait_for_service "$SERVICE_TIMEOUT" "$KORORA_API_URL"; then
        die $LINENO "korora-api did not start at $KORORA_API_URL"
    fi
}

# korora_unit_file SERVICE - devstack's unit of SERVICE
function korora_unit_file {
    echo "$SYSTEMD_DIR/devstack@$1.service"
}

# korora_start_unit SERVICE COMMAND [GROUP] - SERVICE under systemd, as
# devstack@SERVICE.service: named as devstack names its own services
# (so that stop_process, service_check and "journalctl -u
# devstack@SERVICE" find it), but korora-nova's own unit
# (etc/systemd/SERVICE.service: restart on failure, the runtime folder,
# the sandbox) instead of devstack's plain one, with devstack's paths
# and user in a drop-in beside it
function korora_start_unit {
    local service=$1 command=$2 group=${3:-} unit
    if [[ ${USER_UNITS:-False} == True ]]; then
        die $LINENO "$service runs as a system unit (its sandbox needs systemd's system manager): set USER_UNITS=False"
    fi
    unit=$(korora_unit_file "$service")
    sudo install -d -m 0755 "$unit.d"
    sudo install -m 0644 "$KORORA_DIR/etc/systemd/$service.service" "$unit"
    korora_unit_dropin "$service" "$command" "$group" |
        sudo tee "$unit.d/devstack.conf" >/dev/null
    sudo chmod 0644 "$unit.d/devstack.conf"
    $SYSTEMCTL daemon-reload
    $SYSTEMCTL enable "devstack@$service.service"
    # restart: a unit an earlier stack left running reads its new files.
    $SYSTEMCTL restart "devstack@$service.service"
}

# korora_unit_dropin SERVICE COMMAND [GROUP] - what devstack changes in
# korora-nova's unit: the virtualenv's console script and devstack's
# file, $STACK_USER (who owns devstack's files and runs nova-compute,
# which must reach the manager's socket), the state in $KORORA_STATE_DIR
# instead of /var/lib
function korora_unit_dropin {
    local service=$1 command=$2 group=${3:-}
    local writable=$KORORA_STATE_DIR folder
    if [[ $service == korora-vtpm-manager ]]; then
        # The unit makes /run/korora (RuntimeDirectory); another folder
        # of the socket must exist, and be writable in the unit's
        # read-only file system.
        folder=$(dirname "$KORORA_LIBVIRT_HOOK_SOCKET")
        if [[ $folder != /run/korora ]]; then
            sudo install -d -o "$STACK_USER" -m 0755 "$folder"
            writable+=" $folder"
        fi
        if is_service_enabled korora-swtpm; then
            printf '[Unit]\nWants=devstack@korora-swtpm.service\nAfter=devstack@korora-swtpm.service\n\n'
        fi
    fi
    printf '[Service]\n'
    printf 'ExecStart=\nExecStart=%s\n' "$command"
    printf 'User=%s\nGroup=%s\n' "$STACK_USER" "${group:-$(id -gn "$STACK_USER")}"
    printf '# devstack keeps the state in KORORA_STATE_DIR.\n'
    printf 'StateDirectory=\nReadWritePaths=%s\n' "$writable"
    printf "# devstack's checkouts and virtualenv may lie below a home folder.\n"
    printf 'ProtectHome=read-only\n'
    if [[ $service == korora-vtpm-manager ]] && ! is_service_enabled korora-swtpm; then
        printf 'DeviceAllow=%s rw\n' "$KORORA_TPM_DEVICE"
    fi
}

# korora_enroll_commands - what the verifier's node runs to enroll this
# host, for a compute node stacked after it
function korora_enroll_commands {
    local host policy manage
    host=$(korora_host)
    policy=$(korora_policy_name)
    manage="korora-manage --config-file $KORORA_VERIFIER_CONF"
    echo "$manage host enroll $host; $manage policy record $host $policy --signing-key $KORORA_CONF_DIR/policy-signing-key.pem; $manage host set-policy $host $policy; $manage host attest $host"
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
# attest it once, in the order doc/source/admin/host-trust.rst gives,
# with korora-manage on the verifier's file (its database, its key)
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
# driver, holds no [korora_database] credentials (nova-compute would
# refuse to load the driver) and calls the manager's socket (devstack
# makes nova-cpu.conf when it starts nova-compute)
function korora_check_compute_driver {
    local driver socket
    if [[ -n ${NOVA_CPU_CONF:-} && -f $NOVA_CPU_CONF ]]; then
        driver=$(iniget "$NOVA_CPU_CONF" DEFAULT compute_driver)
        if [[ $driver != korora.KororaDriver ]]; then
            die $LINENO "nova-compute runs ${driver:-its default driver}, not korora.KororaDriver ($NOVA_CPU_CONF)"
        fi
        if [[ -n $(iniget "$NOVA_CPU_CONF" korora_database connection) ]]; then
            die $LINENO "$NOVA_CPU_CONF holds [korora_database] connection: nova-compute must not hold the verifier's database credentials (remove it from local.conf's post-config)"
        fi
        socket=$(iniget "$NOVA_CPU_CONF" korora libvirt_hook_socket)
        if [[ $socket != "$KORORA_LIBVIRT_HOOK_SOCKET" ]]; then
            die $LINENO "nova-compute calls the vTPM manager on ${socket:-the default socket}, the manager answers on $KORORA_LIBVIRT_HOOK_SOCKET ($NOVA_CPU_CONF [korora] libvirt_hook_socket)"
        fi
    fi
}

# korora_check_scheduler - nova-scheduler runs TrustedVTPMFilter: in
# enabled_filters, and found through available_filters (a local.conf
# section merged after extra can still replace either)
function korora_check_scheduler {
    local enabled available
    enabled=$(iniget "$NOVA_CONF" filter_scheduler enabled_filters)
    if [[ ",${enabled:-$KORORA_NOVA_DEFAULT_FILTERS}," != *",$KORORA_FILTER,"* ]]; then
        die $LINENO "nova-scheduler does not run $KORORA_FILTER: add it to [filter_scheduler] enabled_filters ($NOVA_CONF, or local.conf's post-config)"
    fi
    available=$(iniget_multiline "$NOVA_CONF" filter_scheduler available_filters)
    if [[ " ${available:-$KORORA_NOVA_DEFAULT_AVAILABLE_FILTERS} " != *" $KORORA_FILTER_PATH "* ]]; then
        die $LINENO "nova-scheduler cannot load $KORORA_FILTER: add $KORORA_FILTER_PATH to [filter_scheduler] available_filters ($NOVA_CONF, or local.conf's post-config)"
    fi
}

# check_korora - what the cloud now relies on (test-config)
function check_korora {
    if is_service_enabled korora-verifier && is_service_enabled korora-vtpm-manager; then
        korora_manage host show "$(korora_host)"
    fi
    if is_service_enabled korora-vtpm-manager && is_service_enabled n-cpu; then
        korora_check_compute_driver
    fi
    if is_service_enabled n-sch; then
        korora_check_scheduler
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
    for service in $KORORA_UNIT_SERVICES korora-swtpm korora-api; do
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
    if is_service_enabled korora-api; then
        # As lib/placement cleans up its API's.
        sudo rm -f "$(apache_site_config_for korora-api)"
        remove_uwsgi_config "$KORORA_API_UWSGI_CONF" korora-api
        # shellcheck disable=SC2046 # one path a word
        rm -f $(korora_horizon_files) "$KORORA_HORIZON_KEYS_SETTINGS"
    fi
    sudo rm -rf "$KORORA_STATE_DIR" "$KORORA_CONF_DIR"
    sudo rm -f "$KORORA_SCHEDULER_CONF"
    # The units (unstack stopped and disabled them).
    local service unit removed=False
    for service in $KORORA_UNIT_SERVICES; do
        unit=$(korora_unit_file "$service")
        if [[ -e $unit || -e $unit.d ]]; then
            sudo rm -rf "$unit" "$unit.d"
            removed=True
        fi
    done
    if [[ $removed == True ]]; then
        $SYSTEMCTL daemon-reload
    fi
}

function korora_drop_database {
    # clean.sh never calls initialize_database_backends: the values it
    # would set (lib/database), without its password prompt. devstack's
    # warn returns the status before it, so "|| true" under errexit.
    local host=${DATABASE_HOST:-${MYSQL_HOST:-$SERVICE_LOCAL_HOST}}
    local user=${DATABASE_USER:-${MYSQL_USER:-root}}
    local password=${DATABASE_PASSWORD:-${MYSQL_PASSWORD:-}}
    case ${DATABASE_TYPE:-} in
        mysql)
            local args=(-u"$user" -h"$host")
            # An empty -p makes mysql prompt; without it, ~/.my.cnf.
            if [[ -n $password ]]; then
                args+=(-p"$password")
            fi
            mysql "${args[@]}" -e "DROP DATABASE IF EXISTS $KORORA_DATABASE_NAME;" ||
                warn $LINENO "cannot drop database $KORORA_DATABASE_NAME" || true
            ;;
        postgresql)
            # The password is in ~/.pgpass (lib/databases/postgresql).
            dropdb -h"$host" -U"$user" --if-exists "$KORORA_DATABASE_NAME" ||
                warn $LINENO "cannot drop database $KORORA_DATABASE_NAME" || true
            ;;
        *)
            warn $LINENO "database $KORORA_DATABASE_NAME left on ${DATABASE_TYPE:-an unknown server}" || true
            ;;
    esac
}


# Dispatch
# --------

if is_service_enabled korora-vtpm-manager korora-verifier korora-api; then
    if [[ "$1" == "stack" && "$2" == "pre-install" ]]; then
        echo_summary "Installing korora-nova's packages"
        korora_check_awk
        install_korora_packages
    elif [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing korora-nova"
        install_korora
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring korora-nova"
        configure_korora
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting korora-nova's services"
        if is_service_enabled n-sch; then
            korora_keep_filter
        fi
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
