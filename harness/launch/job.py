"""One point's job: start the processes, wait until ready, measure every level, stop.

Runs inside the submitit job: a local subprocess, or the job's own step on the first
node of a SLURM allocation, from where the engines start as further job steps on their
nodes. While a level runs, a sampler scrapes every worker's /metrics and status.json
shows the level's progress. Every level is written as soon as it is measured, and a
level whose summary.json already exists is skipped, so a requeued or re-run job resumes
at the first unmeasured level.

Stopping: SIGTERM (scancel, preemption, the time limit) raises JobTerminated in the main
thread, which stops every process group on its way out. submitit signals an approaching
time limit or a preemption with SIGUSR2 and then calls PointJob.checkpoint, which stops
the processes and requeues the same point.
"""

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import submitit
from omegaconf import DictConfig, OmegaConf
from submitit.helpers import Checkpointable, DelayedSubmission

from harness.config.compose import load_point_config
from harness.config.schema import ExecutorKind, ModeName
from harness.engines.deployment import Deployment
from harness.launch.deploy import FreePortAllocator, plan_launch, start_launch
from harness.launch.nodes import NodeSet, allocation_nodes, local_nodes
from harness.launch.processes import ManagedProcess, stop_processes
from harness.launch.pools import pool_shape, pool_summary
from harness.launch.topology import Topology, build_topology
from harness.loadgen.levels import (
    api_key_from_env,
    level_names,
    level_specs,
    write_level_results,
)
from harness.loadgen.runner import LevelProgress, LevelSpec, run_level
from harness.loadgen.sampler import MetricsSampler, read_metrics_frame
from harness.report.ratematch import PoolShape
from harness.results.layout import PointPaths
from harness.results.status import PointState, PointStatus, write_status

logger = logging.getLogger(__name__)

# status.json is rewritten at most this often while a level runs, because every write
# is an fsync and the progress callback runs on the load generator's event loop.
STATUS_INTERVAL_S = 1.0
# Folder of the files that engine commands read (rendered next to their argv).
ENGINE_FILES_DIR = "engine"
JOB_LOG_FILE = "job.log"


class JobTerminated(BaseException):
    """SIGTERM reached the job (scancel, preemption or the time limit).

    A BaseException, like KeyboardInterrupt, so that no `except Exception` in the load
    generator swallows it and submitit writes no result for a job that may be requeued.
    """


class PointJob(Checkpointable):
    """The submitit callable of one point; checkpoint() requeues the same point.

    A requeued job starts afresh and skips the levels that have a summary.json.
    """

    def __init__(self, point_dir: str) -> None:
        self.point_dir = point_dir
        self._run: PointRun | None = None

    def __call__(self) -> str:
        self._run = PointRun(Path(self.point_dir))
        return self._run.run()

    def checkpoint(self) -> DelayedSubmission:
        if self._run is not None:
            self._run.prepare_requeue()
        return DelayedSubmission(PointJob(self.point_dir))

    def __getstate__(self) -> dict:
        # The running processes stay with this job; a requeued job starts its own.
        return {"point_dir": self.point_dir, "_run": None}


def run_point(point_dir: str) -> str:
    """Measure the point in point_dir, which contains its config.yaml; return its state."""
    return PointRun(Path(point_dir)).run()


class PointRun:
    """One attempt at measuring a point: its status, its processes and its levels."""

    def __init__(self, point_dir: Path) -> None:
        self.paths = PointPaths(point_dir)
        self.processes: list[ManagedProcess] = []
        self.status: PointStatus | None = None
        self.requeued = False

    def run(self) -> str:
        _configure_job_logging(self.paths.logs / JOB_LOG_FILE)
        paths = self.paths
        cfg = load_point_config(paths.config)
        point_id = paths.root.name
        levels = level_names(cfg)
        status = PointStatus(
            point_id=point_id,
            state=PointState.starting,
            levels_total=len(levels),
            levels_done=[level for level in levels if paths.summary(level).exists()],
            job_id=_job_id(),
            log_paths=[str(paths.logs / JOB_LOG_FILE)],
        )
        self.status = status
        write_status(paths.status, status)

        previous_handler = _install_sigterm_handler()
        try:
            api_key = api_key_from_env(cfg)
            topology = build_topology(cfg)
            nodes = _point_nodes(cfg, topology.num_nodes)
            launch = plan_launch(
                cfg, topology, nodes, FreePortAllocator(nodes.head_address),
                files_dir=paths.root / ENGINE_FILES_DIR,
            )
            status.log_paths = [str(paths.logs / JOB_LOG_FILE)] + [
                str(paths.logs / f"{spec.name}.log") for spec in launch.specs
            ]
            write_status(paths.status, status)

            readiness = cfg.engine.readiness
            start_launch(launch, paths.logs, readiness.timeout_s, readiness.poll_interval_s, self.processes)
            status.state = PointState.running
            write_status(paths.status, status)

            self._measure_levels(cfg, launch.deployment, topology, api_key)
            status.state = PointState.done
            write_status(paths.status, status)
            return status.state.value
        except BaseException as error:
            if self.requeued:
                logger.warning("point %s stopped for a requeue: %s", point_id, type(error).__name__)
                raise
            status.state = PointState.failed
            status.error = describe_error(error)
            write_status(paths.status, status)
            logger.error("point %s failed: %s", point_id, status.error)
            raise
        finally:
            stop_processes(self.processes)
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)

    def prepare_requeue(self) -> None:
        """Stop every process and mark the point pending again, before submitit requeues it."""
        self.requeued = True
        logger.warning("point %s is being requeued (time limit or preemption)", self.paths.root.name)
        stop_processes(self.processes)
        if self.status is not None:
            self.status.state = PointState.pending
            self.status.current_level = None
            self.status.level_progress = None
            write_status(self.paths.status, self.status)

    def _measure_levels(
        self, cfg: DictConfig, deployment: Deployment, topology: Topology, api_key: str | None
    ) -> None:
        paths, status = self.paths, self.status
        # The load goes to the router when the point has one; per-GPU figures count every
        # worker's GPUs, both pools of a disaggregated point.
        specs = level_specs(cfg, deployment.entry_url, topology.num_gpus, api_key)
        shape = pool_shape(cfg, topology) if cfg.mode.name == ModeName.disagg else None
        metric_frames = [read_metrics_frame(paths.server_metrics, status.levels_done)]
        metric_names = OmegaConf.to_container(cfg.engine.metrics, resolve=True)
        targets, target_metric_names = _metrics_targets(cfg, deployment)
        with MetricsSampler(targets, metric_names, target_metric_names=target_metric_names) as sampler:
            for level, spec in specs:
                if level in status.levels_done:
                    logger.info("point %s level %s already measured; skipping", status.point_id, level)
                    continue
                metric_frames.append(_measure_level(paths, status, sampler, spec, level, metric_frames, shape))
                status.levels_done.append(level)
                status.current_level = None
                status.level_progress = None
                write_status(paths.status, status)


def describe_error(error: BaseException) -> str:
    """Return `Type: message` of an error, or of each error inside an exception group.

    asyncio's TaskGroup wraps an error raised while a level runs (such as JobTerminated)
    in a BaseExceptionGroup, whose own message names none of them.
    """
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


def _metrics_targets(
    cfg: DictConfig, deployment: Deployment
) -> tuple[list[tuple[str, str]], dict[str, dict[str, str | None]]]:
    """Return (name, URL) of every /metrics to sample, and the router's own metric names.

    The router is sampled only when engine.router.metrics names its metrics.
    """
    targets = deployment.metrics_targets()
    router = deployment.router
    names = cfg.engine.router.metrics
    if router is None or names is None:
        return targets, {}
    targets.append((router.name, router.base_url + cfg.engine.router.metrics_path))
    return targets, {router.name: OmegaConf.to_container(names, resolve=True)}


def _point_nodes(cfg: DictConfig, required_nodes: int) -> NodeSet:
    if cfg.cluster.executor == ExecutorKind.slurm:
        return allocation_nodes(required_nodes)
    return local_nodes()


def _job_id() -> str | None:
    """Return the submitit job id (123 or 123_4 for an array task), or None outside a job."""
    try:
        return str(submitit.JobEnvironment().job_id)
    except RuntimeError:
        return os.environ.get("SLURM_JOB_ID")


def _install_sigterm_handler():
    """Make SIGTERM raise JobTerminated; return the previous handler, or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def terminate(signum: int, frame) -> None:
        raise JobTerminated(
            f"received {signal.Signals(signum).name} (scancel, preemption or the time limit); "
            "a re-run or requeued job resumes at the first unmeasured level"
        )

    return signal.signal(signal.SIGTERM, terminate)


def _measure_level(
    paths: PointPaths,
    status: PointStatus,
    sampler: MetricsSampler,
    spec: LevelSpec,
    level: str,
    metric_frames: list[pd.DataFrame],
    shape: PoolShape | None,
) -> pd.DataFrame:
    """Run one level with the sampler around it, write its files and return its metric rows.

    shape is given for a disaggregated point, whose summary then gets a `pools` entry.
    """
    status.current_level = level
    status.level_progress = None
    write_status(paths.status, status)
    last_write_s = time.monotonic()

    def report_progress(progress: LevelProgress) -> None:
        nonlocal last_write_s
        now_s = time.monotonic()
        if now_s - last_write_s < STATUS_INTERVAL_S:
            return
        last_write_s = now_s
        status.level_progress = _progress_fields(progress)
        write_status(paths.status, status)

    sampler.start(level)
    try:
        result = run_level(spec, progress=report_progress)
    finally:
        level_metrics = sampler.stop()

    if shape is not None:
        result.summary["pools"] = pool_summary(shape, result.summary, level, level_metrics)
    frame = pd.concat([*metric_frames, level_metrics], ignore_index=True)
    write_level_results(paths, level, result, frame)
    return level_metrics


def _progress_fields(progress: LevelProgress) -> dict[str, float | int | str]:
    return {
        "phase": progress.phase,
        "done": progress.done,
        "total": progress.total,
        "failed": progress.failed,
        "in_flight": progress.in_flight,
        "output_tokens": progress.output_tokens,
        "elapsed_s": round(progress.elapsed_s, 3),
    }


def _configure_job_logging(log_path: Path) -> None:
    """Log to the job's stderr (submitit's log) and to log_path, when nothing configured logging."""
    if logging.getLogger().handlers:
        return
    level = os.environ.get("HARNESS_LOG_LEVEL", "INFO")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.StreamHandler(), logging.FileHandler(log_path)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers)
