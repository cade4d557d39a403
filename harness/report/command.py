"""`harness report`: collect result folders and write index.html with PNG plots beside it."""

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

import harness
from harness.errors import ResultsError
from harness.report.html_tables import levels_table
from harness.report.page import PageContent, SweepInfo, render_page
from harness.report.points import ReportPoint, report_points
from harness.report.sections import (
    FigureWriter,
    load_section,
    pareto_section,
    rate_match_section,
    skip,
    timeseries_section,
)
from harness.report.server_metrics import read_server_metrics
from harness.results.collect import collect
from harness.results.io import write_text_atomic
from harness.results.layout import SERVER_METRICS_FILE, SWEEP_FILE

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_NAME = "report"
INDEX_FILE = "index.html"


def report_command(paths: list[str], output: str | None, console: Console) -> int:
    """Write the report of the result folders to output (default <first path>/report) and return 0.

    Errors are raised as ResultsError for the CLI to report.
    """
    if not paths:
        raise ResultsError("no results folder given; pass at least one folder to report on")
    output_dir = Path(output) if output is not None else Path(paths[0]) / DEFAULT_OUTPUT_NAME
    index_path = build_report(paths, output_dir, console)
    console.print(f"report written to {index_path}")
    return 0


def build_report(paths: Sequence[Path | str], output_dir: Path, console: Console | None = None) -> Path:
    """Collect the paths, write every PNG and index.html into output_dir, and return the index path."""
    console = console or Console()
    frame = collect(paths)
    if frame.empty:
        raise ResultsError(
            f"no measured level found in {', '.join(map(str, paths))}; run `harness sweep` first "
            "or pass the folder of a sweep with finished levels"
        )
    output_dir.mkdir(parents=True, exist_ok=True)

    points = report_points(frame)
    skipped: dict[int, list[str]] = {1: [], 2: [], 3: [], 4: []}
    metrics = _read_metrics(points, skipped[2])

    disagg_count = sum(1 for point in points if point.mode == "disagg")
    level_plots = sum(len(point.levels) for point in points if metrics.get(point.point_dir) is not None)
    total = disagg_count + level_plots + 3
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=console, transient=True,
    )
    with progress:
        task = progress.add_task("plotting", total=total)
        writer = FigureWriter(output_dir, progress, task)
        rate_match_blocks, rate_match_skipped = rate_match_section(points, frame, metrics, writer)
        timeseries_blocks, timeseries_skipped = timeseries_section(points, metrics, writer)
        load_images, load_skipped = load_section(points, writer)
        pareto_image, frontier, pareto_skipped = pareto_section(points, writer)
    skipped[1].extend(rate_match_skipped)
    skipped[2].extend(timeseries_skipped)
    skipped[3].extend(load_skipped)
    skipped[4].extend(pareto_skipped)

    page = PageContent(
        generated=datetime.now().astimezone().isoformat(timespec="seconds"),
        harness_version=harness.__version__,
        experiments=tuple(sorted({point.experiment for point in points})),
        sweeps=tuple(_sweep_infos(points)),
        rate_match=tuple(rate_match_blocks),
        timeseries=tuple(timeseries_blocks),
        load_images=tuple(load_images),
        pareto_image=pareto_image,
        frontier=frontier,
        levels=levels_table(points, frame),
        skipped=skipped,
    )
    index_path = output_dir / INDEX_FILE
    write_text_atomic(index_path, render_page(page))
    logger.info("report of %d points and %d levels written to %s", len(points), len(frame), index_path)
    return index_path


def _read_metrics(points: Sequence[ReportPoint], skipped: list[str]) -> dict[str, pd.DataFrame | None]:
    """Read each point's server_metrics.parquet once. A missing or unreadable file gives None."""
    metrics: dict[str, pd.DataFrame | None] = {}
    for point in points:
        path = Path(point.point_dir) / SERVER_METRICS_FILE
        try:
            metrics[point.point_dir] = read_server_metrics(path)
        except ResultsError as error:
            logger.warning("point %s: %s", point.point_id, error)
            metrics[point.point_dir] = None
            skipped.append(f"point {point.point_id}: {error}")
            continue
        if metrics[point.point_dir] is None:
            skip(skipped, f"point {point.point_id}: no {SERVER_METRICS_FILE}")
    return metrics


def _sweep_infos(points: Sequence[ReportPoint]) -> list[SweepInfo]:
    """Read sweep.yaml of each sweep folder. A missing or unreadable file leaves its fields empty."""
    infos = []
    sweep_dirs = dict.fromkeys(Path(point.point_dir).parent for point in points)
    for sweep_dir in sweep_dirs:
        data = {}
        path = sweep_dir / SWEEP_FILE
        if path.exists():
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
                data = loaded if isinstance(loaded, dict) else {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
                logger.warning("cannot read %s: %s; the report header leaves its fields empty", path, error)
        infos.append(SweepInfo(
            experiment=sweep_dir.parent.name,
            sweep=sweep_dir.name,
            created=_text(data.get("created")),
            harness_version=_text(data.get("harness_version")),
            git_revision=_text(data.get("git_revision")),
        ))
    return infos


def _text(value: object) -> str:
    return "-" if value is None else str(value)
