"""The `harness bench` command: measure load levels against a server that is already running.

The output folder has the layout of a sweep's point folder (config.yaml, levels/<level>/,
server_metrics.parquet), so `harness collect` and `harness solve` read it too, plus
summary.parquet with one row per level.
"""

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.live import Live
from rich.text import Text

from harness.config.compose import compose_config
from harness.errors import ConfigError, LaunchError, ResultsError
from harness.launch.topology import gpus_per_worker
from harness.loadgen.levels import (
    api_key_from_env,
    level_specs,
    write_level_results,
)
from harness.loadgen.runner import LevelProgress, run_level
from harness.loadgen.sampler import MetricsSampler, read_metrics_frame
from harness.results.collect import flatten_config, flatten_summary
from harness.results.io import read_json, write_parquet_atomic, write_text_atomic
from harness.results.layout import LEVELS_DIR, SUMMARY_FILE, PointPaths
from harness.results.status import PointState, PointStatus, write_status
from harness.results.table import print_results_table

logger = logging.getLogger(__name__)

SUMMARY_TABLE_FILE = "summary.parquet"
# Name of the one scrape target in server_metrics.parquet.
WORKER_NAME = "endpoint"
SERVER_CHECK_TIMEOUT_S = 10.0

# Keys that change what a level measures. A folder whose levels were measured with other
# values is not resumed, so that one table never mixes two setups. The level lists are
# left out, so that a re-run may add levels.
MEASURED_PREFIXES = (
    "endpoint.url", "endpoint.model", "workload.", "mode.", "model.vocab_size", "parallelism.", "bench.",
)
UNMEASURED_KEYS = ("bench.concurrency", "bench.request_rate", "bench.max_concurrency")

_REQUIRED_KEYS = (
    ("endpoint.url", "endpoint.url=http://127.0.0.1:8000", "the server's base URL"),
    ("endpoint.model", "endpoint.model=meta-llama/Llama-3.1-8B-Instruct", "the served model name"),
    ("output_dir", "output_dir=bench/llama8b-tp1", "the folder for the results"),
)


def bench_command(overrides: list[str], force: bool, console: Console) -> int:
    """Measure every level of the config against endpoint.url and write them to output_dir.

    Levels whose summary.json exists are skipped unless force is set. Returns exit
    status 0; invalid configs raise ConfigError and an unreachable server LaunchError.
    """
    cfg = compose_config(overrides).cfg
    _require_keys(cfg)
    api_key = api_key_from_env(cfg)
    base_url = server_base_url(cfg.endpoint.url)
    paths = PointPaths(Path(cfg.output_dir))
    # One server: the parallelism config gives its GPU count for the *_per_gpu figures.
    num_gpus = gpus_per_worker(cfg.parallelism)
    specs = level_specs(cfg, base_url, num_gpus, api_key)

    changes = _config_changes(paths, cfg)
    if changes and not force:
        raise ConfigError(
            f"{paths.root} contains levels measured with another config ({changes}); use a new "
            "output_dir, or --force to measure every level again"
        )
    if changes:
        logger.warning(
            "%s contains levels measured with another config (%s); --force measures the listed "
            "levels again, and other level folders keep their old results", paths.root, changes,
        )
    check_server(base_url, cfg.endpoint.model, api_key)
    write_text_atomic(paths.config, OmegaConf.to_yaml(cfg, resolve=True))

    to_run = []
    for level, spec in specs:
        if force or not paths.summary(level).exists():
            to_run.append((level, spec))
        else:
            console.print(
                f"skip {level}: already measured in {paths.level_dir(level)} (--force measures it again)",
                highlight=False,
            )
    console.print(
        f"bench {cfg.endpoint.model} at {base_url}: {len(to_run)} of {len(specs)} levels to run, "
        f"{num_gpus} GPUs, results in {paths.root}",
        highlight=False,
    )

    # Keep the server metrics of levels measured by earlier runs that this run keeps.
    run_levels = {level for level, _ in to_run}
    kept_levels = [path.parent.name for path in _summary_paths(paths) if path.parent.name not in run_levels]
    metric_frames = [read_metrics_frame(paths.server_metrics, kept_levels)]
    metric_names = OmegaConf.to_container(cfg.engine.metrics, resolve=True)
    levels_without_success = 0
    with MetricsSampler([(WORKER_NAME, base_url + "/metrics")], metric_names) as sampler:
        for level, spec in to_run:
            line = ProgressLine(level)
            sampler.start(level)
            try:
                # Transient, so the final line printed below replaces the live one. A console
                # that is not a terminal (a CI log) gets only that final line.
                with Live(console=console, get_renderable=line.render, refresh_per_second=4, transient=True):
                    result = run_level(spec, progress=line.update)
            finally:
                metric_frames.append(sampler.stop())
            console.print(line.render())
            write_level_results(paths, level, result, pd.concat(metric_frames, ignore_index=True))
            if result.summary["completed"] == 0:
                levels_without_success += 1
                _print_first_error(console, level, result.records)

    table = summary_table(paths)
    write_parquet_atomic(paths.root / SUMMARY_TABLE_FILE, table)
    # A status.json lets harness collect and solve read the folder like a sweep point's.
    measured = [path.parent.name for path in _summary_paths(paths)]
    write_status(paths.status, PointStatus(
        point_id=paths.root.name, state=PointState.done,
        levels_total=len(measured), levels_done=measured,
    ))
    print_results_table(_display_frame(table, cfg, paths), console)
    console.print(f"results: {paths.root}", highlight=False)
    # Every level failing means the server rejected the workload, not a measurement.
    return 1 if to_run and levels_without_success == len(to_run) else 0


def _print_first_error(console: Console, level: str, records: list) -> None:
    """Print the first failed request's error, because a level with no success has no metrics."""
    for record in records:
        if record.error_type is not None:
            console.print(
                f"level {level}: no request succeeded; first error: {record.error_type}: "
                f"{record.error_message}",
                style="red", highlight=False, markup=False,
            )
            return


def server_base_url(url: str) -> str:
    """Return the server's root URL: endpoint.url without a trailing / or /v1."""
    return url.rstrip("/").removesuffix("/v1")


def check_server(base_url: str, model: str, api_key: str | None) -> None:
    """Fail early when the server is unreachable, rejects the API key, or does not serve the model.

    Reads GET /v1/models. A response that is not a model list (from a server without
    that route) is logged and the run continues, because the requests themselves may work.
    """
    url = base_url + "/v1/models"
    request = urllib.request.Request(url)
    if api_key is not None:
        request.add_header("Authorization", f"Bearer {api_key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=SERVER_CHECK_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            hint = (
                "the API key was rejected; check the variable that endpoint.api_key_env names"
                if api_key is not None
                else "set endpoint.api_key_env to the name of the variable that holds the API key"
            )
            raise ConfigError(f"{url} returned HTTP {error.code}: {hint}") from None
        logger.warning("%s returned HTTP %d; cannot check endpoint.model, continuing", url, error.code)
        return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise LaunchError(
            f"cannot reach the server at {url}: {reason}; start it, or fix endpoint.url"
        ) from None

    served = _served_models(body)
    if served is None:
        logger.warning("%s did not return a model list; cannot check endpoint.model, continuing", url)
    elif model not in served:
        raise ConfigError(
            f"endpoint.model={model} is not served at {base_url}; it serves {', '.join(served) or 'no model'}"
        )


def summary_table(paths: PointPaths) -> pd.DataFrame:
    """Build one row per measured level in the folder: the level, then its flattened summary.json."""
    rows: list[dict[str, Any]] = []
    for summary_path in _summary_paths(paths):
        try:
            summary = read_json(summary_path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ResultsError(
                f"cannot read {summary_path}: {error}; delete its level folder and run bench again"
            ) from None
        rows.append({"level": summary_path.parent.name, **flatten_summary(summary, summary_path)})

    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["level"])
    # Open-loop levels have no concurrency, so the rate and then the name order them.
    sort_by = [column for column in ("concurrency", "request_rate", "level") if column in frame.columns]
    return frame.sort_values(sort_by, kind="mergesort", na_position="last").reset_index(drop=True)


class ProgressLine:
    """A live status line of one level: requests done/total, in flight, failed, output tok/s.

    update() is the runner's progress callback. It only stores the latest progress,
    because it runs on the load generator's event loop; rich's refresh thread calls
    render() a few times a second.
    """

    # Output tok/s is measured over windows of at least this length.
    RATE_WINDOW_S = 1.0

    def __init__(self, level: str) -> None:
        self.level = level
        self.latest: LevelProgress | None = None
        self._window_phase: str | None = None
        self._window_start: tuple[float, int] = (0.0, 0)
        self._output_tps: float | None = None

    def update(self, progress: LevelProgress) -> None:
        self.latest = progress

    def render(self) -> Text:
        progress = self.latest
        if progress is None:
            return Text(f"{self.level}: starting")

        # elapsed_s and output_tokens restart with each phase, and so does the window.
        if progress.phase != self._window_phase:
            self._window_phase = progress.phase
            self._window_start = (0.0, 0)
            self._output_tps = None
        start_s, start_tokens = self._window_start
        window_s = progress.elapsed_s - start_s
        if window_s >= self.RATE_WINDOW_S:
            self._output_tps = (progress.output_tokens - start_tokens) / window_s
            self._window_start = (progress.elapsed_s, progress.output_tokens)

        output_tps = self._output_tps
        if output_tps is None:
            # Until the first full window, the phase's mean rate so far.
            output_tps = progress.output_tokens / progress.elapsed_s if progress.elapsed_s > 0 else 0.0
        return Text(
            f"{self.level} {progress.phase}: {progress.done}/{progress.total} requests done, "
            f"{progress.in_flight} in flight, {progress.failed} errors, "
            f"{output_tps:,.0f} output tok/s"
        )


def _require_keys(cfg: DictConfig) -> None:
    missing = [entry for entry in _REQUIRED_KEYS if OmegaConf.select(cfg, entry[0]) is None]
    if not missing:
        return

    key, example, meaning = missing[0]
    others = ""
    if len(missing) > 1:
        others = f" (also missing: {', '.join(entry[0] for entry in missing[1:])})"
    raise ConfigError(f"{key} is missing{others}: pass {meaning}, e.g. {example}")


def _config_changes(paths: PointPaths, cfg: DictConfig) -> str:
    """Describe the measured keys that differ from the folder's config.yaml, or return "".

    Returns "" for a folder without measured levels, whose config may change freely.
    """
    if not paths.config.exists() or not _summary_paths(paths):
        return ""
    try:
        previous = flatten_config(OmegaConf.to_container(OmegaConf.load(paths.config), resolve=True))
    except (OSError, yaml.YAMLError, OmegaConfBaseException) as error:
        raise ResultsError(
            f"cannot read {paths.config}: {error}; delete it, or use a new output_dir"
        ) from None
    current = flatten_config(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))

    changed = []
    for key in sorted(set(previous) | set(current)):
        if not key.startswith(MEASURED_PREFIXES) or key.startswith(UNMEASURED_KEYS):
            continue
        if previous.get(key) != current.get(key):
            changed.append(f"{key}: {previous.get(key)!r} -> {current.get(key)!r}")
    description = "; ".join(changed[:3])
    if len(changed) > 3:
        description += f"; and {len(changed) - 3} more"
    return description


def _summary_paths(paths: PointPaths) -> list[Path]:
    return sorted((paths.root / LEVELS_DIR).glob(f"*/{SUMMARY_FILE}"))


def _served_models(body: bytes) -> list[str] | None:
    """Return the model ids of an OpenAI /v1/models response body, or None for another body."""
    try:
        data = json.loads(body)
        return [str(entry["id"]) for entry in data["data"]]
    except (ValueError, KeyError, TypeError):
        return None


def _display_frame(table: pd.DataFrame, cfg: DictConfig, paths: PointPaths) -> pd.DataFrame:
    """Add the point id and config columns that the results table shows."""
    frame = table.copy()
    frame.insert(0, "point_id", paths.root.name)
    config_columns = flatten_config(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    return frame.assign(**{key: [value] * len(frame) for key, value in config_columns.items()})

