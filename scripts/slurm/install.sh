# Install the Debian packages of the local cluster when any is missing. Sourced by start.sh.

REQUIRED_PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
POLICY_RC_FILE=/usr/sbin/policy-rc.d
POLICY_RC_MARKER="# written by harness scripts/slurm/start.sh"

package_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# Remove the policy-rc.d that install_packages wrote, and never one that was there before.
# start.sh also calls it on exit, so that a failed install does not leave it behind.
remove_own_policy_rc() {
    if [[ -f $POLICY_RC_FILE ]] && grep -qF "$POLICY_RC_MARKER" "$POLICY_RC_FILE"; then
        rm -f "$POLICY_RC_FILE"
        log "removed the temporary $POLICY_RC_FILE"
    fi
}

install_packages() {
    local missing=() package
    for package in "${REQUIRED_PACKAGES[@]}"; do
        package_installed "$package" || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        log "packages already installed: ${REQUIRED_PACKAGES[*]}"
        return 0
    fi

    command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand and run start.sh again"
    log "installing missing packages: ${missing[*]}"

    # When policy-rc.d exits with 101, invoke-rc.d does not start the distribution's own
    # slurmctld, slurmd, munge and mariadb services, which would take the default ports
    # and sockets. A policy-rc.d that already exists (Docker images ship one) is kept.
    if [[ ! -e $POLICY_RC_FILE ]]; then
        printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_RC_MARKER" > "$POLICY_RC_FILE"
        chmod 755 "$POLICY_RC_FILE"
        log "wrote a temporary $POLICY_RC_FILE that stops package scripts from starting services"
    fi

    log "running apt-get update"
    apt-get update -q >"$LOG_DIR/apt-get-update.log" 2>&1 \
        || { show_log_tail "$LOG_DIR/apt-get-update.log"; die "apt-get update failed"; }

    log "running apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >"$LOG_DIR/apt-get-install.log" 2>&1 \
        || { show_log_tail "$LOG_DIR/apt-get-install.log"; die "apt-get install ${missing[*]} failed"; }

    remove_own_policy_rc
    log "installed ${missing[*]}"
}
