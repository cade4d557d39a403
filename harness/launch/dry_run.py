"""`harness sweep --dry-run`: each point's sbatch parameters and every command it would start.

Ports print as placeholders such as `<aggregated-0:http>`. On SLURM, node names are
those of the allocation the command runs in when it has enough nodes, else the
placeholders node0 .. node{N-1}. Every command runs through the same bash wrapper
(launcher.py), which is printed once and shown as `<wrapper>` in the command lines.
"""

import shlex
from collections.abc import Sequence

from rich.console import Console

from harness.config.schema import ExecutorKind
from harness.engines.ports import placeholder_port
from harness.errors import LaunchError
from harness.launch.allocation import array_key, describe_parameters, slurm_parameters
from harness.launch.deploy import LaunchSpec, plan_launch
from harness.launch.launcher import wrapper_script
from harness.launch.nodes import NodeSet, allocation_node_names, allocation_nodes, local_nodes, placeholder_nodes
from harness.launch.plan import Point

WRAPPER_PLACEHOLDER = "<wrapper>"


def dry_run_nodes(required: int) -> NodeSet:
    """Return the nodes of the current allocation when it has `required` nodes, else placeholders."""
    names = allocation_node_names()
    if names is not None and len(names) >= required:
        try:
            return allocation_nodes(required)
        except LaunchError:
            pass
    return placeholder_nodes(required)


def point_commands(point: Point, nodes: NodeSet | None = None) -> list[LaunchSpec]:
    """Return the launch specs of a point with placeholder ports (and nodes unless given)."""
    if nodes is None:
        if point.cfg.cluster.executor == ExecutorKind.slurm:
            nodes = dry_run_nodes(point.topology.num_nodes)
        else:
            nodes = local_nodes()
    return list(plan_launch(point.cfg, point.topology, nodes, placeholder_port).specs)


def command_line(spec: LaunchSpec, script: str) -> str:
    """Return a spec as one shell line: its environment, then its argv with the script shortened."""
    argv = [WRAPPER_PLACEHOLDER if arg == script else arg for arg in spec.argv]
    env = [f"{key}={shlex.quote(value)}" for key, value in spec.env.items()]
    return " ".join([*env, shlex.join(argv)])


def print_dry_run(points: Sequence[Point], console: Console) -> None:
    """Print each point's sbatch parameters (on SLURM), its commands, and the job arrays."""
    printed_scripts: set[str] = set()
    groups: dict[str, list[Point]] = {}
    for point in points:
        swept = " ".join(f"{key}={value}" for key, value in point.swept.items())
        console.print(f"{point.point_id} {swept}".rstrip(), markup=False, highlight=False)
        cluster = point.cfg.cluster
        if cluster.executor == ExecutorKind.slurm:
            parameters = slurm_parameters(cluster, point.topology, job_name=f"harness-{point.point_id}")
            groups.setdefault(array_key(parameters), []).append(point)
            console.print(f"  sbatch: {describe_parameters(parameters)}", markup=False, highlight=False, soft_wrap=True)

        script = wrapper_script(list(cluster.setup))
        if script not in printed_scripts:
            printed_scripts.add(script)
            console.print(f"  {WRAPPER_PLACEHOLDER} is this bash script:", markup=False, highlight=False)
            for line in script.splitlines():
                console.print(f"    {line}", markup=False, highlight=False, soft_wrap=True)
        for spec in point_commands(point):
            console.print(f"  {spec.name}: {command_line(spec, script)}", markup=False, highlight=False, soft_wrap=True)

    for group in groups.values():
        if len(group) > 1:
            parallelism = group[0].cfg.cluster.array_parallelism
            console.print(
                f"one job array harness-{group[0].composed.experiment} of {len(group)} points "
                f"(at most {parallelism} at a time): " + ", ".join(point.point_id for point in group),
                markup=False, highlight=False, soft_wrap=True,
            )
