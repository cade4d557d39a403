#!/usr/bin/env bash
# Stop the local SLURM cluster that start.sh started and remove its state. Cancels the
# jobs still in the queue, then signals only the daemons whose PIDs start.sh recorded.
# Running it when no cluster exists changes nothing.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$SCRIPT_DIR/lib.sh"

STOP_TIMEOUT_S=20

# Print the PID of daemon NAME from DAEMONS_FILE when it is still running.
running_daemon_pid() {
    local wanted=$1 name pid comm
    [[ -r $DAEMONS_FILE ]] || return 1
    while read -r name pid comm; do
        if [[ $name == "$wanted" ]]; then
            pid_if_running "$pid" "$comm"
            return
        fi
    done < "$DAEMONS_FILE"
    return 1
}

# Print the largest job id in slurmctld or in the accounting database, or nothing.
largest_job_id() {
    {
        squeue -h -t all -o '%A' 2>/dev/null || true
        if running_daemon_pid slurmdbd >/dev/null; then
            sacct -a -X -n -P -o JobIDRaw -S 2000-01-01T00:00:00 2>/dev/null || true
        fi
    } | sed -n 's/^\([0-9][0-9]*\).*/\1/p' | sort -n | tail -n 1
}

# Store the next free job id beside STATE_DIR, so that the next start.sh continues there.
save_next_job_id() {
    local largest stored=0
    largest=$(largest_job_id)
    [[ -n $largest ]] || return 0
    if [[ -r $JOB_ID_COUNTER_FILE ]]; then
        stored=$(tr -dc '0-9' < "$JOB_ID_COUNTER_FILE")
        stored=${stored:-0}
    fi
    if ((largest + 1 > stored)); then
        echo $((largest + 1)) > "$JOB_ID_COUNTER_FILE"
        log "saved next job id $((largest + 1)) to $JOB_ID_COUNTER_FILE"
    fi
}

no_active_jobs() {
    [[ -z $(squeue -h -o '%A' -t PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING 2>/dev/null) ]]
}

# Cancel every job through slurmctld, so that slurmstepd ends the job processes instead
# of leaving them behind the stopped slurmd.
cancel_jobs() {
    local job_ids
    job_ids=$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ') || return 0
    [[ -n ${job_ids// /} ]] || return 0
    log "cancelling jobs: $job_ids"
    # shellcheck disable=SC2086 # one argument per job id
    scancel $job_ids || log "WARNING: scancel $job_ids failed"
    wait_until "$STOP_TIMEOUT_S" "cancelled jobs to end" no_active_jobs \
        || log "WARNING: some jobs did not end; their processes may outlive the cluster"
}

process_gone() {
    ! pid_if_running "$1" "$2" >/dev/null
}

stop_daemon() {
    local name=$1 pid=$2 comm=$3
    if ! pid_if_running "$pid" "$comm" >/dev/null; then
        log "$name (PID $pid) is not running"
        return 0
    fi
    log "stopping $name (PID $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$STOP_TIMEOUT_S" "$name (PID $pid) to exit" process_gone "$pid" "$comm"; then
        log "killing $name (PID $pid) after ${STOP_TIMEOUT_S}s"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 5 "$name (PID $pid) to exit" process_gone "$pid" "$comm" \
            || log "WARNING: $name (PID $pid) is still running"
    fi
}

# Stop the daemons in the reverse order of their start: slurmd, slurmctld, slurmdbd,
# MariaDB, munged.
stop_daemons() {
    local lines=() line name pid comm i
    [[ -r $DAEMONS_FILE ]] || return 0
    mapfile -t lines < "$DAEMONS_FILE"
    for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
        line=${lines[i]}
        read -r name pid comm <<<"$line"
        stop_daemon "$name" "$pid" "$comm"
    done
}

remove_database_dir() {
    local target
    [[ -L $DB_LINK ]] || return 0
    target=$(readlink "$DB_LINK")
    # Remove only a folder that start.sh made with mktemp, whatever the link was changed to.
    case $target in
        /dev/shm/harness-slurm-db.* | "$STATE_DIR"/db-data.*)
            rm -rf -- "$target"
            log "removed the MariaDB data in $target"
            ;;
        *) log "WARNING: $DB_LINK points to $target, which start.sh did not create; left in place" ;;
    esac
}

main() {
    [[ $EUID -eq 0 ]] || die "stop.sh must run as root, like the daemons it stops"
    if [[ ! -e $STATE_DIR ]]; then
        log "nothing to stop: $STATE_DIR does not exist"
        return 0
    fi
    [[ -e $STATE_DIR/.harness-slurm ]] \
        || die "$STATE_DIR has no .harness-slurm marker, so start.sh did not create it; not removing it"

    log "stopping the cluster in $STATE_DIR"
    if running_daemon_pid slurmctld >/dev/null; then
        save_next_job_id
        cancel_jobs
    fi
    stop_daemons
    remove_database_dir
    rm -rf -- "$STATE_DIR"
    log "removed $STATE_DIR; cluster stopped"
}

main
