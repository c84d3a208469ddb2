#!/usr/bin/env bash
# Installs the external programs the integration tests and benchmarks need, only what is missing.
#
#   integration/install-deps.sh [influxdb] [smtp] [prometheus] [amtool] [victoria-metrics] [wrk] [nginx]
#                               [llvm-profdata] [python-clients]
#
# With no argument: influxdb and smtp (what `cargo test` needs). Debian packages via apt-get
# (`apt-get update` once, then `apt-get install -y`); must run as root (or with passwordless sudo).
# Services the packages ship are NOT started (a policy-rc.d is put in place for the install when
# the machine has none).
#
# Groups and what is checked:
#   influxdb          influxd + influx      (packages influxdb, influxdb-client; 1.6.7 on Debian 12)
#   smtp              /usr/bin/python3 can import aiosmtpd (package python3-aiosmtpd). The SMTP
#                     sink always runs Debian's /usr/bin/python3, never the python3 first in PATH
#                     (a pyenv interpreter here), so no pip install is needed.
#   prometheus        prometheus            (package prometheus)
#   amtool            amtool                (package prometheus-alertmanager; Alertmanager's CLI)
#   victoria-metrics  victoria-metrics      (package victoria-metrics)
#   wrk               wrk                   (package wrk)
#   nginx             nginx                 (package nginx-light, else nginx)
#   llvm-profdata     llvm-profdata-N, N the LLVM major version `rustc -vV` reports (package
#                     llvm-N): merges the profiles of a PGO build (integration/pgo/build.sh).
#                     Prints its path on stdout.
#   python-clients    not a Debian group: a venv (made with the python3 first in PATH) at
#                     $MONITOR_PY_CLIENTS_VENV, default ${XDG_CACHE_HOME:-$HOME/.cache}/monitor/venv,
#                     holding PyPI's `influxdb` and `influxdb-client` (the InfluxDB v1 and v2 Python
#                     clients). Needs no root; reuses the venv when both import. Prints the venv
#                     path on stdout.
set -euo pipefail

SYSTEM_PYTHON=/usr/bin/python3

log() { printf 'install-deps: %s\n' "$*" >&2; }

PY_CLIENTS_VENV=${MONITOR_PY_CLIENTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/monitor/venv}
PY_CLIENTS_PACKAGES=(influxdb influxdb-client)

python_clients_present() {
    [[ -x $PY_CLIENTS_VENV/bin/python ]] &&
        "$PY_CLIENTS_VENV/bin/python" -c 'import influxdb, influxdb_client' >/dev/null 2>&1
}

install_python_clients() {
    if ! python_clients_present; then
        local manual="python3 -m venv $PY_CLIENTS_VENV && $PY_CLIENTS_VENV/bin/pip install ${PY_CLIENTS_PACKAGES[*]}"
        log "creating venv $PY_CLIENTS_VENV with ${PY_CLIENTS_PACKAGES[*]}"
        if ! python3 -m venv "$PY_CLIENTS_VENV" >&2; then
            log "python3 -m venv failed (on Debian: apt-get install -y python3-venv); then run $manual"
            exit 1
        fi
        if ! "$PY_CLIENTS_VENV/bin/pip" install -q --disable-pip-version-check "${PY_CLIENTS_PACKAGES[@]}" >&2; then
            log "pip install failed (PyPI unreachable?); run $manual"
            exit 1
        fi
        if ! python_clients_present; then
            log "the venv still cannot import influxdb and influxdb_client; run $manual"
            exit 1
        fi
    fi
    printf '%s\n' "$PY_CLIENTS_VENV"
}

has_command() {
    command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]] || [[ -x "/usr/bin/$1" ]]
}

# The LLVM major version rustc is built on: profiles must be merged by the same major version.
rustc_llvm_major() {
    local major
    major=$(rustc -vV 2>/dev/null | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
    if [[ -z $major ]]; then
        log "cannot tell rustc's LLVM version (rustc -vV); is Rust installed?"
        exit 1
    fi
    echo "$major"
}

missing_packages_for() {
    case "$1" in
        influxdb)
            has_command influxd || echo influxdb
            has_command influx || echo influxdb-client
            ;;
        smtp)
            if ! [[ -x $SYSTEM_PYTHON ]] || ! "$SYSTEM_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
                echo python3-aiosmtpd
            fi
            ;;
        prometheus) has_command prometheus || echo prometheus ;;
        amtool) has_command amtool || echo prometheus-alertmanager ;;
        victoria-metrics) has_command victoria-metrics || echo victoria-metrics ;;
        wrk) has_command wrk || echo wrk ;;
        nginx) has_command nginx || echo nginx-light ;;
        llvm-profdata)
            local major
            major=$(rustc_llvm_major)
            has_command "llvm-profdata-$major" || echo "llvm-$major"
            ;;
        python-clients) ;; # not apt: install_python_clients
        *)
            log "unknown group '$1' (known: influxdb smtp prometheus amtool victoria-metrics wrk nginx llvm-profdata python-clients)"
            exit 2
            ;;
    esac
}

run_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 126
    fi
}

POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
cleanup() {
    if [[ $CREATED_POLICY -eq 1 ]]; then
        run_as_root rm -f "$POLICY" || true
    fi
}
trap cleanup EXIT

main() {
    local groups=("$@")
    if [[ ${#groups[@]} -eq 0 ]]; then
        groups=(influxdb smtp)
    fi
    local packages=() group pkg
    for group in "${groups[@]}"; do
        case "$group" in
            influxdb | smtp | prometheus | amtool | victoria-metrics | wrk | nginx | llvm-profdata | python-clients) ;;
            *)
                log "unknown group '$group' (known: influxdb smtp prometheus amtool victoria-metrics wrk nginx llvm-profdata python-clients)"
                exit 2
                ;;
        esac
    done
    for group in "${groups[@]}"; do
        while IFS= read -r pkg; do
            [[ -n $pkg ]] && packages+=("$pkg")
        done < <(missing_packages_for "$group")
    done
    for group in "${groups[@]}"; do
        [[ $group == python-clients ]] && install_python_clients
    done
    if [[ ${#packages[@]} -eq 0 ]]; then
        log "nothing to install for: ${groups[*]}"
        return 0
    fi
    local manual="as root: apt-get update && apt-get install -y ${packages[*]}"
    if ! command -v apt-get >/dev/null 2>&1; then
        log "apt-get not found; install these Debian packages (or equivalents) yourself: ${packages[*]}"
        exit 1
    fi
    if ! run_as_root true; then
        log "need root (or passwordless sudo) to install ${packages[*]}; run $manual"
        exit 1
    fi
    if [[ ! -e $POLICY ]]; then
        # keep package postinst scripts from starting system-wide services on default ports
        run_as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $POLICY && chmod 755 $POLICY"
        CREATED_POLICY=1
    fi
    log "installing: ${packages[*]}"
    if ! run_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq; then
        log "apt-get update failed; check network/apt sources, then run $manual"
        exit 1
    fi
    if ! run_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; then
        if [[ " ${packages[*]} " == *" nginx-light "* ]]; then
            log "nginx-light failed; trying nginx"
            packages=("${packages[@]/nginx-light/nginx}")
            if run_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; then
                return 0
            fi
        fi
        log "apt-get install failed; run $manual"
        exit 1
    fi
    for group in "${groups[@]}"; do
        if [[ -n $(missing_packages_for "$group") ]]; then
            log "group '$group' still incomplete after install"
            exit 1
        fi
    done
}

main "$@"
for group in "$@"; do
    if [[ $group == llvm-profdata ]]; then
        command -v "llvm-profdata-$(rustc_llvm_major)"
    fi
done
