"""One point's job: start the workers, wait until ready, measure every level, stop.

Runs inside the submitit job (a local subprocess or a SLURM allocation). While a level
runs, a sampler scrapes every worker's /metrics and status.json shows the level's
progress. Every level is written as soon as it is measured, and a level whose
summary.json already exists is skipped, so a requeued or re-run job resumes at the
first unmeasured level.
"""

import logging
import os
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from harness.config.compose import load_point_config
from harness.engines.render import WorkerCommand, render_worker
from harness.launch.health import wait_ready
from harness.launch.processes import ManagedProcess, free_port, start_process, stop_processes
from harness.launch.topology import build_topology
from harness.loadgen.levels import (
    api_key_from_env,
    level_names,
    level_specs,
    write_level_results,
)
from harness.loadgen.runner import LevelProgress, LevelSpec, run_level
from harness.loadgen.sampler import MetricsSampler, read_metrics_frame
from harness.results.layout import PointPaths
from harness.results.status import PointState, PointStatus, write_status

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"

# status.json is rewritten at most this often while a level runs, because every write
# is an fsync and the progress callback runs on the load generator's event loop.
STATUS_INTERVAL_S = 1.0


def run_point(point_dir: str) -> str:
    """Measure the point in point_dir (which holds its config.yaml); return its state."""
    _configure_job_logging()
    paths = PointPaths(Path(point_dir))
    cfg = load_point_config(paths.config)
    point_id = paths.root.name
    levels = level_names(cfg)
    status = PointStatus(
        point_id=point_id,
        state=PointState.starting,
        levels_total=len(levels),
        levels_done=[level for level in levels if paths.summary(level).exists()],
        job_id=os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
    )
    write_status(paths.status, status)

    processes: list[ManagedProcess] = []
    try:
        api_key = api_key_from_env(cfg)
        commands = _start_workers(cfg, paths, processes)
        status.log_paths = [str(process.log_path) for process in processes]
        write_status(paths.status, status)

        readiness = cfg.engine.readiness
        wait_ready(
            [(process, command.base_url) for process, command in zip(processes, commands)],
            paths=[readiness.health_path, readiness.models_path],
            timeout_s=readiness.timeout_s,
            poll_interval_s=readiness.poll_interval_s,
        )
        status.state = PointState.running
        write_status(paths.status, status)

        specs = level_specs(cfg, commands[0].base_url, build_topology(cfg).num_gpus, api_key)
        metric_frames = [read_metrics_frame(paths.server_metrics, status.levels_done)]
        targets = [(command.worker.name, command.base_url + "/metrics") for command in commands]
        metric_names = OmegaConf.to_container(cfg.engine.metrics, resolve=True)
        with MetricsSampler(targets, metric_names) as sampler:
            for level, spec in specs:
                if level in status.levels_done:
                    logger.info("point %s level %s already measured; skipping", point_id, level)
                    continue
                metric_frames.append(_measure_level(paths, status, sampler, spec, level, metric_frames))
                status.levels_done.append(level)
                status.current_level = None
                status.level_progress = None
                write_status(paths.status, status)

        status.state = PointState.done
        write_status(paths.status, status)
        return status.state.value
    except BaseException as error:
        status.state = PointState.failed
        status.error = f"{type(error).__name__}: {error}"
        write_status(paths.status, status)
        logger.error("point %s failed: %s", point_id, status.error)
        raise
    finally:
        stop_processes(processes)


def _start_workers(
    cfg: DictConfig, paths: PointPaths, processes: list[ManagedProcess]
) -> list[WorkerCommand]:
    topology = build_topology(cfg)
    commands = []
    for worker in topology.workers:
        command = render_worker(cfg, worker, HOST, free_port(HOST))
        log_path = paths.logs / f"{worker.name}.log"
        processes.append(start_process(worker.name, command.argv, command.env, log_path))
        commands.append(command)
    return commands


def _measure_level(
    paths: PointPaths,
    status: PointStatus,
    sampler: MetricsSampler,
    spec: LevelSpec,
    level: str,
    metric_frames: list[pd.DataFrame],
) -> pd.DataFrame:
    """Run one level with the sampler around it, write its files and return its metric rows."""
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


def _configure_job_logging() -> None:
    """Log to the job's stderr (submitit's log file) when nothing configured logging."""
    if not logging.getLogger().handlers:
        level = os.environ.get("HARNESS_LOG_LEVEL", "INFO")
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
