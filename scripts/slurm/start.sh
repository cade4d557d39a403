#!/usr/bin/env bash
# Start a throw-away SLURM cluster on this machine: munged, MariaDB, slurmdbd, slurmctld
# and one slurmd per node, all as root, reachable on the loopback address only, with fake
# GPUs. Installs the Debian packages first when any is missing. Running it again while
# the cluster is up changes nothing. See docs/slurm.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$SCRIPT_DIR/lib.sh"
source "$SCRIPT_DIR/install.sh"
source "$SCRIPT_DIR/config.sh"
source "$SCRIPT_DIR/daemons.sh"

NODE_COUNT=2
GPUS_PER_NODE=8
PORT_BASE=6817

usage() {
    cat <<EOF
Usage: bash scripts/slurm/start.sh [--nodes N] [--gpus-per-node G] [--port-base P]

Start a local SLURM cluster for harness. State goes to \$HARNESS_SLURM_DIR
(now $STATE_DIR); stop it with scripts/slurm/stop.sh.

  --nodes N          number of nodes, each a slurmd on this machine (default $NODE_COUNT)
  --gpus-per-node G  fake GPUs per node, given to jobs as CUDA_VISIBLE_DEVICES (default $GPUS_PER_NODE)
  --port-base P      TCP port of slurmctld; slurmdbd takes P+1 and node i takes P+1+i
                     (default $PORT_BASE)
EOF
}

parse_positive_int() {
    local option=$1 value=${2:-}
    [[ $value =~ ^[1-9][0-9]*$ ]] || die "invalid value '$value' for $option: expected a positive integer"
    echo "$value"
}

while (($# > 0)); do
    case $1 in
        --nodes) NODE_COUNT=$(parse_positive_int "$1" "${2:-}"); shift 2 ;;
        --gpus-per-node) GPUS_PER_NODE=$(parse_positive_int "$1" "${2:-}"); shift 2 ;;
        --port-base) PORT_BASE=$(parse_positive_int "$1" "${2:-}"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done

on_exit() {
    local status=$?
    remove_own_policy_rc
    if ((status != 0)); then
        log "start failed; logs are in $LOG_DIR. Run scripts/slurm/stop.sh to remove what was started."
    fi
}

# Print the host's IPv4 address and fail unless it is a loopback address, because the
# daemons listen on the address that the host name resolves to.
loopback_host_address() {
    local host=$1 address
    address=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
    [[ -n $address ]] || die "host name '$host' does not resolve; add '127.0.1.1 $host' to /etc/hosts"
    [[ $address == 127.* ]] \
        || die "host name '$host' resolves to $address, not a loopback address, so the cluster would be reachable from the network; add '127.0.1.1 $host' to /etc/hosts first"
    echo "$address"
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST_ADDRESS/$1") 2>/dev/null
}

check_ports_free() {
    local port
    ((PORT_BASE + 1 + NODE_COUNT <= 65535)) \
        || die "--port-base $PORT_BASE leaves no room for $NODE_COUNT nodes: ports go up to PORT_BASE+1+nodes, at most 65535"
    for ((port = PORT_BASE; port <= PORT_BASE + 1 + NODE_COUNT; port++)); do
        if port_in_use "$port"; then
            die "TCP port $port on $HOST_ADDRESS is already in use; choose other ports with --port-base"
        fi
    done
}

# Print the first job id of this run: past every id of earlier runs recorded by stop.sh,
# and past a clock value (tens of seconds since 2026-01-01) for runs stop.sh never saw end.
choose_first_job_id() {
    local counter=0 clock_id
    if [[ -r $JOB_ID_COUNTER_FILE ]]; then
        counter=$(tr -dc '0-9' < "$JOB_ID_COUNTER_FILE")
        counter=${counter:-0}
    fi
    clock_id=$((($(date +%s) - 1767225600) / 10 + 1))
    ((clock_id > 0)) || clock_id=1
    echo $((counter > clock_id ? counter : clock_id))
}

print_usage_hint() {
    cat <<EOF

Local SLURM cluster '$CLUSTER_NAME' is up: $NODE_COUNT node(s) node[1-$NODE_COUNT] with $GPUS_PER_NODE fake GPUs each, partition '$PARTITION_NAME', account '$ACCOUNT_NAME'.
Use it from a shell:
    source $ENV_FILE
    sinfo
    sbatch --gres=gpu:2 --wrap 'echo \$CUDA_VISIBLE_DEVICES'
    python -m harness sweep cluster=slurm ...
Logs: $LOG_DIR
Stop it: bash $SCRIPT_DIR/stop.sh
EOF
}

main() {
    [[ $EUID -eq 0 ]] || die "start.sh must run as root: the daemons run as root, and it installs packages"
    HOST=$(hostname)
    HOST_ADDRESS=$(loopback_host_address "$HOST")

    # A running cluster with the requested options is kept, so that running the script
    # twice does no harm.
    if all_daemons_running && [[ -r $CLUSTER_FILE ]]; then
        if [[ $(cluster_setting NODE_COUNT) == "$NODE_COUNT" \
            && $(cluster_setting GPUS_PER_NODE) == "$GPUS_PER_NODE" \
            && $(cluster_setting PORT_BASE) == "$PORT_BASE" ]]; then
            log "cluster in $STATE_DIR is already running"
            print_usage_hint
            return 0
        fi
        die "a cluster with $(cluster_setting NODE_COUNT) nodes, $(cluster_setting GPUS_PER_NODE) GPUs per node and port base $(cluster_setting PORT_BASE) is already running from $STATE_DIR; run stop.sh first, or set HARNESS_SLURM_DIR and --port-base for a second one"
    fi
    if [[ -e $STATE_DIR ]]; then
        log "removing the partial or stopped cluster left in $STATE_DIR"
        bash "$SCRIPT_DIR/stop.sh"
    fi

    check_ports_free
    log "starting a $NODE_COUNT-node cluster in $STATE_DIR on $HOST ($HOST_ADDRESS)"
    mkdir -p "$ETC_DIR" "$LOG_DIR" "$RUN_DIR" "$SPOOL_DIR/slurmctld"
    # stop.sh deletes a folder only when it carries this marker.
    touch "$STATE_DIR/.harness-slurm"
    chmod 755 "$STATE_DIR" "$RUN_DIR"
    trap on_exit EXIT

    install_packages

    FIRST_JOB_ID=$(choose_first_job_id)
    log "writing configuration to $ETC_DIR (first job id $FIRST_JOB_ID)"
    write_gres_files
    write_slurm_conf
    write_slurmdbd_conf
    local i
    for ((i = 1; i <= NODE_COUNT; i++)); do
        mkdir -p "$SPOOL_DIR/slurmd-$(node_name "$i")"
    done

    start_munged
    start_mariadb
    start_slurmdbd
    # The accounts go in before slurmctld starts, so that it loads them with its first
    # association list instead of waiting for an update from slurmdbd.
    add_account
    start_slurmctld
    for ((i = 1; i <= NODE_COUNT; i++)); do
        start_slurmd "$(node_name "$i")"
    done

    wait_until 60 "all $NODE_COUNT nodes to be idle in sinfo" all_nodes_idle || {
        sinfo -N -l >&2 || true
        die "nodes did not become idle; see $LOG_DIR/slurmd-*.log and $LOG_DIR/slurmctld.log"
    }
    log "all $NODE_COUNT nodes are idle"

    # env.sh and cluster.env come last, so that their presence means a finished start.
    write_env_files
    log "cluster is ready"
    print_usage_hint
}

main
