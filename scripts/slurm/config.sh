# Write slurm.conf, gres.conf, slurmdbd.conf and env.sh of the local cluster. Sourced by
# start.sh, which sets HOST, NODE_COUNT, GPUS_PER_NODE, PORT_BASE and FIRST_JOB_ID first.

# Ports: slurmctld PORT_BASE, slurmdbd PORT_BASE+1, node i (from 1) PORT_BASE+1+i.
slurmdbd_port() { echo $((PORT_BASE + 1)); }
slurmd_port() { echo $((PORT_BASE + 1 + $1)); }
node_name() { echo "node$1"; }

# Print "CPUS SOCKETS CORES THREADS MEMORY_MB" of this machine as slurmd detects it, so
# that no node claims more than slurmd finds and none is drained as invalid.
detect_hardware() {
    local line cpus sockets cores threads memory_mb
    line=$(slurmd -C 2>/dev/null | head -n 1) || die "slurmd -C failed; install the slurmd package and run start.sh again"
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$line")
    sockets=$(sed -n 's/.* SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$line")
    cores=$(sed -n 's/.* CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$line")
    threads=$(sed -n 's/.* ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$line")
    memory_mb=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
    [[ -n $cpus && -n $sockets && -n $cores && -n $threads && -n $memory_mb ]] \
        || die "cannot parse the output of slurmd -C: '$line'"
    echo "$cpus $sockets $cores $threads $memory_mb"
}

write_gres_files() {
    local i
    # gres/gpu accepts only device files, and a symlink to /dev/null passes its check, so
    # these stand in for /dev/nvidia0.. without any GPU behind them.
    mkdir -p "$DEV_DIR"
    for ((i = 0; i < GPUS_PER_NODE; i++)); do
        ln -sfn /dev/null "$DEV_DIR/nvidia$i"
    done
    {
        echo "AutoDetect=off"
        echo "NodeName=node[1-$NODE_COUNT] Name=gpu File=$DEV_DIR/nvidia[0-$((GPUS_PER_NODE - 1))]"
    } > "$ETC_DIR/gres.conf"
}

write_slurm_conf() {
    local cpus sockets cores threads memory_mb node_memory_mb i
    read -r cpus sockets cores threads memory_mb < <(detect_hardware)

    # Every node runs on this one machine, so the nodes share its memory between them.
    node_memory_mb=$((memory_mb / NODE_COUNT))

    cat > "$SLURM_CONF" <<EOF
# Local harness test cluster, written by scripts/slurm/start.sh. Edits are lost on restart.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$HOST
SlurmctldPort=$PORT_BASE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
# Without these, the daemons listen on 0.0.0.0. With them, they listen on the address
# that the host name resolves to, which start.sh has checked to be a loopback address.
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny

StateSaveLocation=$SPOOL_DIR/slurmctld
SlurmdSpoolDir=$SPOOL_DIR/slurmd-%n
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd-%n.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info

# No systemd and no cgroups: processes are tracked through /proc, and tasks are neither
# bound to CPUs nor confined to their GPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
PropagateResourceLimits=NONE
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu

# submitit polls sacct, which reads the accounting database through slurmdbd.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStoragePort=$(slurmdbd_port)
AccountingStorageTRES=gres/gpu
# Clients such as sacctmgr sign their slurmdbd connections with the munge socket named
# here, not with AuthInfo (Slurm 22.05).
AccountingStoragePass=$MUNGE_SOCKET
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none

# Job ids continue from the last run, so that folders keyed on the job id never mix runs.
FirstJobId=$FIRST_JOB_ID
# A request that no node can satisfy fails at submission instead of pending forever.
EnforcePartLimits=ALL
KillWait=5
MinJobAge=10
ReturnToService=2
MailProg=/bin/true
InactiveLimit=0
SchedulerType=sched/backfill
# By default slurmctld waits up to 3 s before it schedules a newly submitted batch job.
# Without the wait, a job on idle nodes starts within about a second.
SchedulerParameters=batch_sched_delay=0

EOF

    for ((i = 1; i <= NODE_COUNT; i++)); do
        echo "NodeName=$(node_name "$i") NodeHostname=$HOST NodeAddr=$HOST Port=$(slurmd_port "$i")" \
            "CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads" \
            "RealMemory=$node_memory_mb Gres=gpu:$GPUS_PER_NODE State=UNKNOWN" >> "$SLURM_CONF"
    done
    echo "PartitionName=$PARTITION_NAME Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >> "$SLURM_CONF"
}

write_slurmdbd_conf() {
    local file="$ETC_DIR/slurmdbd.conf"
    cat > "$file" <<EOF
# Accounting daemon of the local harness test cluster, written by scripts/slurm/start.sh.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$HOST
DbdPort=$(slurmdbd_port)
CommunicationParameters=NoInAddrAny
SlurmUser=root
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
# MariaDB listens on a Unix socket only, and slurmdbd finds it through MYSQL_UNIX_PORT.
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    # slurmdbd refuses a configuration file that others can read.
    chmod 600 "$file"
}

write_env_files() {
    cat > "$ENV_FILE" <<EOF
# Source this file to point sbatch, squeue, sacct, scontrol and submitit at the local cluster.
export SLURM_CONF=$SLURM_CONF
EOF
    local names=() i
    for ((i = 1; i <= NODE_COUNT; i++)); do
        names+=("$(node_name "$i")")
    done
    cat > "$CLUSTER_FILE" <<EOF
SLURM_CONF=$SLURM_CONF
CLUSTER_NAME=$CLUSTER_NAME
PARTITION=$PARTITION_NAME
ACCOUNT=$ACCOUNT_NAME
NODE_COUNT=$NODE_COUNT
NODE_NAMES=${names[*]}
GPUS_PER_NODE=$GPUS_PER_NODE
PORT_BASE=$PORT_BASE
HOST=$HOST
FIRST_JOB_ID=$FIRST_JOB_ID
EOF
}
