"""sbatch parameters and srun lines of SLURM points, asserted exactly without a cluster."""

from harness.engines.deployment import plan_deployment
from harness.engines.ports import placeholder_port
from harness.launch.allocation import array_key, slurm_parameters
from harness.launch.dry_run import point_commands
from harness.launch.launcher import wrapper_script
from harness.launch.nodes import placeholder_nodes
from harness.launch.plan import plan_sweep

DEP8_ON_4_GPU_NODES = [
    "cluster=slurm", "engine=sglang", "parallelism=dep8", "cluster.gpus_per_node=4",
    "cluster.partition=gpu", "cluster.account=team", "cluster.qos=high", "cluster.time_limit_min=30",
    "cluster.cpus_per_task=32", "cluster.mem_gb=512", "+cluster.sbatch_extra.constraint=h100",
    "cluster.setup=[module load cuda]",
]
CONTAINER = [
    "cluster.container.image=nvcr.io/nvidia/sglang:0.5", "cluster.container.mounts=[/models:/models,/data:/data]",
    "cluster.srun_extra=['--mpi=pmix']",
]


def dep8_point(*extra: str):
    return plan_sweep([*DEP8_ON_4_GPU_NODES, *extra]).points[0]


def test_sbatch_parameters_dep8_two_nodes():
    point = dep8_point()

    parameters = slurm_parameters(point.cfg.cluster, point.topology, job_name="harness-x")

    # DEP8 = dp 8 x tp 1 = 8 GPUs, on 4-GPU nodes 8 / 4 = 2 nodes of 4 GPUs each.
    assert parameters == {
        "job_name": "harness-x",
        "time": 30,
        "nodes": 2,
        "ntasks_per_node": 1,
        "srun_args": ["--nodes=1", "--ntasks=1"],
        "gpus_per_node": 4,
        "partition": "gpu",
        "account": "team",
        "qos": "high",
        "cpus_per_task": 32,
        "mem": "512GB",
        "additional_parameters": {"constraint": "h100"},
    }


def test_srun_lines_dep8_two_nodes():
    point = dep8_point()
    script = wrapper_script(["module load cuda"])

    specs = point_commands(point, placeholder_nodes(2))
    rendered = plan_deployment(point.cfg, point.topology, "node0", placeholder_port,
                               node_hosts=lambda worker, rank: f"node{rank}")

    # One SGLang process per node; node rank 1 joins the head node0.
    assert [spec.name for spec in specs] == ["aggregated-0-node0", "aggregated-0-node1"]
    for rank, spec in enumerate(specs):
        assert spec.argv == [
            "srun", "--overlap", "--nodes", "1", "--ntasks", "1", "--nodelist", f"node{rank}",
            "--kill-on-bad-exit=1", "--disable-status",
            "bash", "-c", script, f"aggregated-0-node{rank}", "0", "4",
            *rendered.workers[rank].argv,
        ]
    assert "node0:<aggregated-0:dist_init>" in specs[1].argv


def test_srun_lines_with_container():
    point = dep8_point(*CONTAINER)

    specs = point_commands(point, placeholder_nodes(2))

    prefix = specs[1].argv[:specs[1].argv.index("bash")]
    assert prefix == [
        "srun", "--overlap", "--nodes", "1", "--ntasks", "1", "--nodelist", "node1",
        "--kill-on-bad-exit=1", "--disable-status",
        "--container-image", "nvcr.io/nvidia/sglang:0.5",
        "--container-mounts", "/models:/models,/data:/data",
        "--mpi=pmix",
    ]


def test_wrapper_script_exact():
    assert wrapper_script(["module load cuda"]).splitlines() == [
        "first=$1 count=$2",
        "shift 2",
        "set -e",
        """trap 'echo "$0: setup command failed with exit code $?: $BASH_COMMAND" >&2' ERR""",
        "module load cuda",
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
    ]


def test_local_command_has_no_srun():
    point = plan_sweep(["+experiment=prefill_dep8", "engine.args.chunked_prefill_size=4096"]).points[0]

    specs = point_commands(point)

    # Locally the wrapper runs as a plain subprocess, with all 8 GPU positions of the worker.
    assert specs[0].argv[:6] == ["bash", "-c", wrapper_script([]), "aggregated-0", "0", "8"]


def test_small_workers_share_a_node():
    point = plan_sweep(["cluster=slurm", "parallelism.tp=2"]).points[0]
    parameters = slurm_parameters(point.cfg.cluster, point.topology, job_name="harness-x")

    # One worker of tp 2: one node, 2 GPUs requested on it.
    assert parameters["nodes"] == 1
    assert parameters["gpus_per_node"] == 2


def test_equal_allocations_share_array_key():
    plan = plan_sweep(["cluster=slurm", "engine.args.chunked_prefill_size=4096,8192", "parallelism=tp1,tp8"])
    keys = [
        array_key(slurm_parameters(point.cfg.cluster, point.topology, job_name=f"harness-{point.point_id}"))
        for point in plan.points
    ]

    # Points (4096, tp1), (4096, tp8), (8192, tp1), (8192, tp8): equal GPU counts pair up.
    assert keys[0] == keys[2]
    assert keys[1] == keys[3]
    assert keys[0] != keys[1]
