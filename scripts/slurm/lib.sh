# Shared paths and helpers for start.sh, stop.sh and status.sh. Source it, do not run it.
#
# Every file of the local cluster lives under STATE_DIR, except the MariaDB data folder
# (on /dev/shm, linked from STATE_DIR/db) and the job id counter, which must outlive
# stop.sh: beside STATE_DIR unless HARNESS_SLURM_JOB_ID_FILE names another file.

STATE_DIR="${HARNESS_SLURM_DIR:-/tmp/harness-slurm}"
STATE_DIR="${STATE_DIR%/}"
ETC_DIR="$STATE_DIR/etc"
LOG_DIR="$STATE_DIR/log"
RUN_DIR="$STATE_DIR/run"
SPOOL_DIR="$STATE_DIR/spool"
DEV_DIR="$STATE_DIR/dev"
DB_LINK="$STATE_DIR/db"
# One line per daemon that start.sh started: name, PID, process name (/proc/PID/comm).
DAEMONS_FILE="$RUN_DIR/daemons.tsv"
# Settings of the running cluster as KEY=VALUE lines, read by status.sh and the tests.
CLUSTER_FILE="$STATE_DIR/cluster.env"
ENV_FILE="$STATE_DIR/env.sh"
JOB_ID_COUNTER_FILE="${HARNESS_SLURM_JOB_ID_FILE:-$STATE_DIR.next_job_id}"

CLUSTER_NAME="harness"
PARTITION_NAME="batch"
ACCOUNT_NAME="harness"
MUNGE_SOCKET="$RUN_DIR/munge.socket"
MARIADB_SOCKET="$RUN_DIR/mariadb.sock"

export SLURM_CONF="$ETC_DIR/slurm.conf"
# slurmctld, slurmd, slurmdbd, munged and mariadbd live in /usr/sbin, which a non-login
# shell's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
# slurmd and every slurmstepd load the hardware topology with hwloc. Its x86 backend pins
# a thread to each CPU in turn to run CPUID, which stalled job starts for 6 to 40 s on a
# busy 2-CPU gVisor machine. The Linux backend alone finds the same CPUs, cores and
# sockets from sysfs.
export HWLOC_COMPONENTS=-x86

SCRIPT_START_S=$(date +%s.%N)

log() {
    local now_s elapsed_s
    now_s=$(date +%s.%N)
    elapsed_s=$(awk -v a="$SCRIPT_START_S" -v b="$now_s" 'BEGIN { printf "%.1f", b - a }')
    printf '%s [+%ss] harness-slurm: %s\n' "$(date +%H:%M:%S)" "$elapsed_s" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

# Print the tail of a log file to stderr, so that a failure shows its cause.
show_log_tail() {
    local file=$1
    if [[ -r $file ]]; then
        log "last lines of $file:"
        tail -n 20 "$file" >&2
    fi
}

# Print PID when it is alive and its /proc/PID/comm is COMM, so that a PID reused by
# another program is never signalled. A zombie counts as ended: the daemons are children
# of PID 1, which may take a second or more to reap them.
pid_if_running() {
    local pid=$1 comm=$2 actual stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    actual=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $actual == "$comm" ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # The state is the first field after "(comm) ", and comm may contain spaces.
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]] || return 1
    printf '%s\n' "$pid"
}

# Succeed when DAEMONS_FILE exists and every daemon in it is alive.
all_daemons_running() {
    local name pid comm count=0
    [[ -r $DAEMONS_FILE ]] || return 1
    while read -r name pid comm; do
        pid_if_running "$pid" "$comm" >/dev/null || return 1
        count=$((count + 1))
    done < "$DAEMONS_FILE"
    ((count > 0))
}

# Run a command until it succeeds, at most TIMEOUT_S seconds, polling every 0.2 s.
wait_until() {
    local timeout_s=$1 what=$2
    shift 2
    local deadline_s=$(($(date +%s) + timeout_s))
    until "$@" >/dev/null 2>&1; do
        if (($(date +%s) >= deadline_s)); then
            log "timed out after ${timeout_s}s waiting for $what"
            return 1
        fi
        sleep 0.2
    done
}

# Print KEY's value from CLUSTER_FILE.
cluster_setting() {
    local key=$1
    sed -n "s/^$key=//p" "$CLUSTER_FILE" 2>/dev/null
}
