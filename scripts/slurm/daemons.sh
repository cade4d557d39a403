# Start each daemon of the local cluster and wait until it serves requests. Sourced by
# start.sh after config.sh has written the configuration files.
#
# Every daemon gets /dev/null as stdin and a log file as stdout and stderr: a daemon that
# kept the caller's pipes open would make `subprocess.run(capture_output=True)` wait forever.

# Wait for a PID file, check its process and append it to DAEMONS_FILE for stop.sh.
record_daemon() {
    local name=$1 pid_file=$2 comm=$3 pid
    wait_until 20 "$name to write $pid_file" test -s "$pid_file" || return 1
    read -r pid < "$pid_file"
    pid_if_running "$pid" "$comm" >/dev/null || {
        log "$name (PID $pid from $pid_file) is not running"
        return 1
    }
    printf '%s\t%s\t%s\n' "$name" "$pid" "$comm" >> "$DAEMONS_FILE"
    log "$name is running as PID $pid"
}

munge_works() {
    munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET"
}

start_munged() {
    local key_file="$STATE_DIR/munge/munge.key"
    mkdir -p "$STATE_DIR/munge"
    chmod 700 "$STATE_DIR/munge"
    dd if=/dev/urandom of="$key_file" bs=1024 count=1 status=none
    chmod 400 "$key_file"

    # --force accepts the world-writable /tmp above the socket, which munged otherwise
    # rejects as insecure.
    log "starting munged"
    munged --force --key-file="$key_file" --socket="$MUNGE_SOCKET" \
        --pid-file="$RUN_DIR/munged.pid" --log-file="$LOG_DIR/munged.log" \
        --seed-file="$STATE_DIR/munge/munged.seed" \
        </dev/null >>"$LOG_DIR/munged.out" 2>&1 \
        || { show_log_tail "$LOG_DIR/munged.log"; die "munged failed to start"; }
    record_daemon munged "$RUN_DIR/munged.pid" munged || die "munged failed to start"
    wait_until 10 "munged to respond" munge_works \
        || { show_log_tail "$LOG_DIR/munged.log"; die "munged does not respond on $MUNGE_SOCKET"; }
}

start_mariadb() {
    local data_dir
    # InnoDB syncs its files often, and on tmpfs a sync costs nothing, so slurmdbd creates
    # its tables in well under a second instead of tens of seconds on disk.
    if [[ -d /dev/shm && -w /dev/shm ]]; then
        data_dir=$(mktemp -d /dev/shm/harness-slurm-db.XXXXXX)
    else
        log "WARNING: /dev/shm is not writable; MariaDB keeps its data on disk, so slurmdbd starts slower"
        data_dir=$(mktemp -d "$STATE_DIR/db-data.XXXXXX")
    fi
    ln -sfn "$data_dir" "$DB_LINK"

    log "creating the MariaDB system tables in $data_dir"
    mariadb-install-db --no-defaults --user=root --datadir="$data_dir" \
        --auth-root-authentication-method=socket --skip-test-db \
        >"$LOG_DIR/mariadb-install-db.log" 2>&1 \
        || { show_log_tail "$LOG_DIR/mariadb-install-db.log"; die "mariadb-install-db failed"; }

    # --skip-networking: the database listens on its Unix socket only, never on TCP.
    log "starting mariadbd"
    setsid mariadbd --no-defaults --user=root --datadir="$data_dir" \
        --socket="$MARIADB_SOCKET" --pid-file="$RUN_DIR/mariadb.pid" --skip-networking \
        --log-error="$LOG_DIR/mariadb.log" --innodb-buffer-pool-size=512M \
        --innodb-lock-wait-timeout=900 \
        </dev/null >>"$LOG_DIR/mariadb.out" 2>&1 &
    wait_until 60 "mariadbd to respond" mariadb-admin --no-defaults --socket="$MARIADB_SOCKET" ping \
        || { show_log_tail "$LOG_DIR/mariadb.log"; die "mariadbd did not start"; }
    record_daemon mariadbd "$RUN_DIR/mariadb.pid" mariadbd || die "mariadbd did not start"
}

sacctmgr_works() {
    sacctmgr -n -P show cluster format=Cluster
}

start_slurmdbd() {
    log "starting slurmdbd"
    # slurmdbd's MariaDB client library takes the socket path from MYSQL_UNIX_PORT.
    MYSQL_UNIX_PORT="$MARIADB_SOCKET" slurmdbd </dev/null >>"$LOG_DIR/slurmdbd.out" 2>&1 \
        || { show_log_tail "$LOG_DIR/slurmdbd.log"; die "slurmdbd failed to start"; }
    record_daemon slurmdbd "$RUN_DIR/slurmdbd.pid" slurmdbd \
        || { show_log_tail "$LOG_DIR/slurmdbd.log"; die "slurmdbd failed to start"; }
    wait_until 60 "slurmdbd to respond" sacctmgr_works \
        || { show_log_tail "$LOG_DIR/slurmdbd.log"; die "slurmdbd does not respond on port $(slurmdbd_port)"; }

    # slurmctld registers with slurmdbd only when its cluster exists in the database.
    log "adding cluster $CLUSTER_NAME to the accounting database"
    sacctmgr -i add cluster "$CLUSTER_NAME" >>"$LOG_DIR/sacctmgr.log" 2>&1 \
        || { show_log_tail "$LOG_DIR/sacctmgr.log"; die "sacctmgr add cluster $CLUSTER_NAME failed"; }
}

slurmctld_is_up() {
    scontrol ping | grep -q ' is UP'
}

start_slurmctld() {
    log "starting slurmctld"
    slurmctld </dev/null >>"$LOG_DIR/slurmctld.out" 2>&1 \
        || { show_log_tail "$LOG_DIR/slurmctld.log"; die "slurmctld failed to start"; }
    record_daemon slurmctld "$RUN_DIR/slurmctld.pid" slurmctld \
        || { show_log_tail "$LOG_DIR/slurmctld.log"; die "slurmctld failed to start"; }
    wait_until 30 "slurmctld to respond" slurmctld_is_up \
        || { show_log_tail "$LOG_DIR/slurmctld.log"; die "slurmctld does not respond on port $PORT_BASE"; }
}

start_slurmd() {
    local node=$1
    log "starting slurmd for $node"
    slurmd -N "$node" </dev/null >>"$LOG_DIR/slurmd-$node.out" 2>&1 \
        || { show_log_tail "$LOG_DIR/slurmd-$node.log"; die "slurmd for $node failed to start"; }
    record_daemon "slurmd-$node" "$RUN_DIR/slurmd-$node.pid" slurmd \
        || { show_log_tail "$LOG_DIR/slurmd-$node.log"; die "slurmd for $node failed to start"; }
}

all_nodes_idle() {
    local states
    states=$(sinfo -h -N -o '%T' | sort -u)
    [[ $states == idle && $(sinfo -h -N -o '%N' | wc -l) -eq $NODE_COUNT ]]
}

account_exists() {
    [[ -n $(sacctmgr -n -P show association cluster="$CLUSTER_NAME" account="$ACCOUNT_NAME" user=root format=User) ]]
}

add_account() {
    log "adding account $ACCOUNT_NAME and user root to cluster $CLUSTER_NAME"
    {
        sacctmgr -i add account "$ACCOUNT_NAME" cluster="$CLUSTER_NAME" \
            description="harness local cluster" organization=harness
        sacctmgr -i add user root account="$ACCOUNT_NAME" cluster="$CLUSTER_NAME"
    } >>"$LOG_DIR/sacctmgr.log" 2>&1 \
        || { show_log_tail "$LOG_DIR/sacctmgr.log"; die "sacctmgr add account $ACCOUNT_NAME failed"; }
    wait_until 30 "sacctmgr to show account $ACCOUNT_NAME" account_exists \
        || die "account $ACCOUNT_NAME does not appear in sacctmgr show association"
}
