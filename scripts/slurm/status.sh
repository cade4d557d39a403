#!/usr/bin/env bash
# Report whether the local SLURM cluster of start.sh is running. Exits 0 when every
# daemon that start.sh recorded is alive and the start finished, 1 otherwise.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$SCRIPT_DIR/lib.sh"

if [[ ! -e $STATE_DIR ]]; then
    echo "stopped: $STATE_DIR does not exist"
    exit 1
fi
if ! all_daemons_running || [[ ! -r $CLUSTER_FILE ]]; then
    echo "partial: $STATE_DIR exists but the cluster is not fully up; run stop.sh, then start.sh"
    exit 1
fi
echo "running: $STATE_DIR"
cat "$CLUSTER_FILE"
sinfo -N
