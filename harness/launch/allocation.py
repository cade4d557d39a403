"""The SLURM allocation of a point, as submitit SlurmExecutor parameters.

The size follows from the topology, never from hand-typed numbers: the workers' node
placement gives the node count, and the most GPUs any node runs gives the per-node GPU
request. The job's own step (the Python process that measures the point) runs as one
task on the first node. The engines start as further job steps with srun (launcher.py).
"""

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.launch.topology import Topology

# submitit starts the job's Python function with srun, once per task of the allocation
# (nodes x ntasks_per_node). These srun options start it once, on the first node; the
# engines' own steps use the other nodes.
JOB_STEP_SRUN_ARGS = ("--nodes=1", "--ntasks=1")


def slurm_parameters(cluster: DictConfig, topology: Topology, job_name: str) -> dict[str, Any]:
    """Return the SlurmExecutor.update_parameters keywords of one point's job.

    `time` is cluster.time_limit_min in minutes and `mem` is cluster.mem_gb per node;
    cluster.sbatch_extra is passed as additional_parameters (sbatch option name -> value).
    Partition, account, qos, cpus_per_task and mem are left out when null, so the
    site's defaults apply.
    """
    parameters: dict[str, Any] = {
        "job_name": job_name,
        "time": int(cluster.time_limit_min),
        "nodes": topology.num_nodes,
        "ntasks_per_node": 1,
        "srun_args": list(JOB_STEP_SRUN_ARGS),
    }
    gpus = topology.max_gpus_on_a_node
    if gpus > 0:
        parameters["gpus_per_node"] = gpus
    optional = {
        "partition": cluster.partition,
        "account": cluster.account,
        "qos": cluster.qos,
        "cpus_per_task": cluster.cpus_per_task,
        "mem": f"{cluster.mem_gb}GB" if cluster.mem_gb is not None else None,
    }
    parameters.update({key: value for key, value in optional.items() if value is not None})
    extra = OmegaConf.to_container(cluster.sbatch_extra, resolve=True)
    if extra:
        parameters["additional_parameters"] = dict(extra)
    return parameters


def array_key(parameters: Mapping[str, Any]) -> str:
    """Return a key that is equal for points whose jobs can share one job array.

    Every parameter but the job name must match, because a job array has one set of
    sbatch options for all its tasks.
    """
    shared = {key: value for key, value in parameters.items() if key != "job_name"}
    return repr(sorted(shared.items()))


def describe_parameters(parameters: Mapping[str, Any]) -> str:
    """Return the parameters as `key=value` text, one space apart, for dry runs and logs."""
    return " ".join(f"{key}={_format(value)}" for key, value in parameters.items())


def _format(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {item}" for key, item in value.items()) + "}"
    return str(value)
