"""The argv that starts one process of a point: srun inside an allocation, or a plain subprocess.

Every process runs through a small bash wrapper,
`bash -c SCRIPT NAME FIRST_GPU GPU_COUNT ENGINE_ARGV...`. The script runs the configured
setup commands (cluster.setup), narrows CUDA_VISIBLE_DEVICES to the process's GPU slice,
writes the node and the GPUs to the process's log and then runs `exec "$@"`. The engine
argv reaches the engine as positional arguments, so no config value other than the setup
commands is ever parsed by a shell.

The slice is a range of positions in the CUDA_VISIBLE_DEVICES that the process starts
with, not GPU indices, because SLURM overwrites that variable in every job step with the
GPUs of the step. Slurm 22.05 on the local test cluster, which has no device cgroups,
gives physical indices, and with device cgroups a site may number them from 0. Positions
are right either way. Without the variable (a machine outside SLURM), positions are indices.
"""

from collections.abc import Sequence

from omegaconf import DictConfig

# A failing setup command stops the process and names the command in its log.
_SETUP_GUARD = (
    "set -e",
    """trap 'echo "$0: setup command failed with exit code $?: $BASH_COMMAND" >&2' ERR""",
)
# Runs after the setup lines: $0 is the process name, first and count the GPU slice.
_SLICE_LINES = (
    "set +e",
    "trap - ERR",
    'IFS=, read -r -a gpus <<< "${CUDA_VISIBLE_DEVICES:-}"',
    "if (( ${#gpus[@]} == 0 )); then gpus=($(seq 0 $((first + count - 1)))); fi",
    "if (( first + count > ${#gpus[@]} )); then",
    '  echo "$0: needs GPUs $first to $((first + count - 1)) of this node but'
    ' CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-} lists ${#gpus[@]}" >&2',
    "  exit 1",
    "fi",
    'gpus=("${gpus[@]:first:count}")',
    'export CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${gpus[*]}")',
    'echo "$0: starting on ${SLURMD_NODENAME:-$(hostname)} with CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES" >&2',
    'exec "$@"',
)


def wrapper_script(setup: Sequence[str]) -> str:
    """Return the bash script that runs setup, narrows the GPUs and execs its arguments.

    A failing setup command stops the process (set -e), so a missing module or
    environment fails the point at start-up with the message in the worker's log.
    """
    lines = ["first=$1 count=$2", "shift 2", *_SETUP_GUARD, *setup, *_SLICE_LINES]
    return "\n".join(lines)


def wrap_command(
    name: str, argv: Sequence[str], setup: Sequence[str], first_gpu: int, gpu_count: int
) -> list[str]:
    """Return the argv that runs argv through the wrapper with GPU positions first_gpu.. of this node."""
    return ["bash", "-c", wrapper_script(setup), name, str(first_gpu), str(gpu_count), *argv]


def srun_prefix(cluster: DictConfig, node_names: Sequence[str], tasks_per_node: int = 1) -> list[str]:
    """Return the srun options that start a job step on node_names inside the allocation.

    --overlap lets the step share the nodes with the job's own step, which has every
    CPU and GPU of the first node. --kill-on-bad-exit ends every task of a multi-node
    engine when one fails, so that the failure shows at once instead of at the
    readiness timeout. --disable-status makes srun pass a single SIGINT on to its tasks,
    which is how the job asks an engine to stop (see processes.ManagedProcess). Pyxis
    container flags follow when cluster.container.image is set, then cluster.srun_extra.
    """
    nodes = len(node_names)
    argv = ["srun", "--overlap", "--nodes", str(nodes), "--ntasks", str(nodes * tasks_per_node)]
    if tasks_per_node > 1:
        argv += ["--ntasks-per-node", str(tasks_per_node)]
    argv += ["--nodelist", ",".join(node_names), "--kill-on-bad-exit=1", "--disable-status"]

    container = cluster.container
    if container.image:
        argv += ["--container-image", str(container.image)]
        if container.mounts:
            argv += ["--container-mounts", ",".join(str(mount) for mount in container.mounts)]
    argv += [str(option) for option in cluster.srun_extra]
    return argv


def launch_argv(
    cluster: DictConfig,
    name: str,
    argv: Sequence[str],
    node_names: Sequence[str] | None,
    first_gpu: int,
    gpu_count: int,
    tasks_per_node: int = 1,
) -> list[str]:
    """Return the full argv of one process: srun on node_names, or the wrapper alone when None."""
    wrapped = wrap_command(name, argv, list(cluster.setup), first_gpu, gpu_count)
    if node_names is None:
        return wrapped
    return srun_prefix(cluster, node_names, tasks_per_node) + wrapped
