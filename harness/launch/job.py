"""One point's job: start the workers, wait until ready, measure every level, stop.

Runs inside the submitit job (a local subprocess or a SLURM allocation). Every level is
written as soon as it is measured, and a level whose summary.json already exists is
skipped, so a requeued or re-run job resumes at the first unmeasured level.
"""

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from harness.config.compose import load_point_config
from harness.config.derived import effective_lengths
from harness.engines.render import WorkerCommand, render_worker
from harness.launch.health import wait_ready
from harness.launch.processes import ManagedProcess, free_port, start_process, stop_processes
from harness.launch.topology import build_topology
from harness.loadgen.records import write_records_parquet
from harness.loadgen.runner import LevelSpec, run_level
from harness.results.io import write_json_atomic
from harness.results.layout import PointPaths, level_name
from harness.results.status import PointState, PointStatus, write_status

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


def run_point(point_dir: str) -> str:
    """Measure the point in point_dir (which holds its config.yaml); return its state."""
    _configure_job_logging()
    paths = PointPaths(Path(point_dir))
    cfg = load_point_config(paths.config)
    point_id = paths.root.name
    levels = [level_name(concurrency=c) for c in cfg.bench.concurrency]
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

        for concurrency, level in zip(cfg.bench.concurrency, levels):
            if level in status.levels_done:
                logger.info("point %s level %s already measured; skipping", point_id, level)
                continue
            _measure_level(cfg, paths, commands[0], concurrency, level)
            status.levels_done.append(level)
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
    cfg: DictConfig, paths: PointPaths, command: WorkerCommand, concurrency: int, level: str
) -> None:
    isl, osl = effective_lengths(cfg)
    spec = LevelSpec(
        base_url=command.base_url,
        model=cfg.model.served_name,
        endpoint=cfg.workload.endpoint.value,
        isl=isl,
        osl=osl,
        concurrency=concurrency,
        num_requests=cfg.bench.requests_per_level,
        warmup_requests=cfg.bench.warmup_requests,
        timeout_s=cfg.bench.timeout_s,
        vocab_size=cfg.model.vocab_size,
        seed=cfg.bench.seed,
        num_gpus=build_topology(cfg).num_gpus,
        slo_ttft_ms=cfg.bench.slo.ttft_ms,
        slo_itl_ms=cfg.bench.slo.itl_ms,
        slo_percentile=cfg.bench.slo.percentile,
    )
    logger.info("point %s level %s: %d requests at concurrency %d",
                paths.root.name, level, spec.num_requests, concurrency)
    result = run_level(spec)

    # requests.parquet first: a summary.json marks the level as measured.
    write_records_parquet(paths.requests(level), result.records)
    write_json_atomic(paths.summary(level), result.summary)
    logger.info(
        "point %s level %s done: %d completed, %d failed, %.0f output tok/s",
        paths.root.name, level, result.summary["completed"], result.summary["failed"],
        result.summary["output_throughput_tps"] or 0.0,
    )


def _configure_job_logging() -> None:
    """Log to the job's stderr (submitit's log file) when nothing configured logging."""
    if not logging.getLogger().handlers:
        level = os.environ.get("HARNESS_LOG_LEVEL", "INFO")
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
