"""Build the report's sections from the collected table and each point's server metrics.

Every section returns its page blocks and the list of what it skipped and why. Each
skip is also logged.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from rich.progress import Progress, TaskID

from harness.errors import SolverError
from harness.report.html_tables import HtmlTable, TableRow, rate_match_table
from harness.report.page import Image, PointBlock
from harness.report.plot_common import png_bytes
from harness.report.plot_levels import frontier_levels, load_figure, pareto_figure
from harness.report.plot_ratematch import rate_match_figure
from harness.report.plot_timeseries import level_timeseries_figure, series_roles
from harness.report.points import ReportPoint, is_open_loop, is_valid, level_load, load_axis_label, number
from harness.report.ratematch import (
    BATCH_LIMIT_KEYS,
    ClientLevel,
    IsolatedCapacity,
    PoolShape,
    decode_batch_limit,
    isolated_capacity,
    rate_match,
)
from harness.results.io import write_bytes_atomic
from harness.results.table import is_missing
from harness.solver.capacity import Role

logger = logging.getLogger(__name__)


class FigureWriter:
    """Build figures one at a time, write each as a PNG in the output folder and advance the progress bar."""

    def __init__(self, output_dir: Path, progress: Progress, task: TaskID) -> None:
        self.output_dir = output_dir
        self.progress = progress
        self.task = task

    def write(self, file_name: str, alt: str, build: Callable[[], Figure | None]) -> Image | None:
        """Write build()'s figure to file_name and return its Image, or None without a file when build() returns None."""
        self.progress.update(self.task, description=f"plotting {file_name}")
        figure = build()
        if figure is not None:
            write_bytes_atomic(self.output_dir / file_name, png_bytes(figure))
        self.progress.advance(self.task)
        return None if figure is None else Image(src=file_name, alt=alt)


def skip(skipped: list[str], message: str) -> None:
    logger.info("skipped: %s", message)
    skipped.append(message)


def rate_match_section(
    points: Sequence[ReportPoint],
    frame: pd.DataFrame,
    metrics: Mapping[str, pd.DataFrame | None],
    writer: FigureWriter,
) -> tuple[list[PointBlock], list[str]]:
    """Plot and tabulate the rate matching of every disaggregated point."""
    blocks: list[PointBlock] = []
    skipped: list[str] = []
    disagg = [point for point in points if point.mode == "disagg"]
    if not disagg:
        skip(skipped, "no disaggregated point (mode.name=disagg) in these results")

    for point in disagg:
        first = point.levels.iloc[0]
        isl, osl = number(first, "target_isl"), number(first, "target_osl")
        if not (isl > 0 and osl > 0):
            skip(skipped, f"point {point.point_id}: its summaries have no target_isl or target_osl")
            continue
        shape = PoolShape(
            isl=int(isl),
            osl=int(osl),
            prefill_workers=_int_or_one(first, "mode.prefill_workers"),
            decode_workers=_int_or_one(first, "mode.decode_workers"),
            gpus_per_worker=int(number(first, "gpus_per_worker")),
            decode_batch_limit=decode_batch_limit(_decode_args(first), _decode_dp(first)),
            prefill_gpus_per_worker=_role_gpus_per_worker(first, "prefill"),
            decode_gpus_per_worker=_role_gpus_per_worker(first, "decode"),
        )

        notes: list[str] = []
        isolated_prefill = _isolated(frame, Role.prefill, shape.isl, notes)
        isolated_decode = _isolated(frame, Role.decode, shape.osl, notes)
        server_metrics = metrics.get(point.point_dir)
        if server_metrics is None:
            logger.info("point %s has no server metrics; its pool token rates are left out", point.point_id)

        result = rate_match(shape, _client_levels(point), server_metrics, isolated_prefill, isolated_decode)
        load_label = _load_label(point)
        image = writer.write(
            f"ratematch-{point.slug}.png",
            f"rate matching of point {point.point_id}",
            partial(rate_match_figure, result, shape.isl, shape.osl, load_label, f"point {point.point_id}"),
        )
        blocks.append(PointBlock(
            title=f"{point.label}: ISL {shape.isl}, OSL {shape.osl}, {shape.prefill_gpus} prefill "
                  f"GPUs, {shape.decode_gpus} decode GPUs",
            images=() if image is None else (image,),
            table=rate_match_table(result, load_label),
            notes=tuple(notes) + result.notes,
        ))
    return blocks, skipped


def timeseries_section(
    points: Sequence[ReportPoint],
    metrics: Mapping[str, pd.DataFrame | None],
    writer: FigureWriter,
) -> tuple[list[PointBlock], list[str]]:
    """Plot queue depth and running batch over time for every level of every point with server metrics."""
    blocks: list[PointBlock] = []
    skipped: list[str] = []
    for point in points:
        server_metrics = metrics.get(point.point_dir)
        if server_metrics is None:
            skip(skipped, f"point {point.point_id}: no readable server_metrics.parquet")
            continue
        queue_role, running_role = series_roles(server_metrics)
        images = []
        for level in point.levels["level"].astype(str):
            level_frame = server_metrics[server_metrics["level"].astype(str) == level]
            image = writer.write(
                f"timeseries-{point.slug}-{level}.png",
                f"queue depth and running batch of point {point.point_id} level {level}",
                partial(level_timeseries_figure, level_frame, level, queue_role, running_role),
            )
            if image is None:
                skip(skipped, f"point {point.point_id} level {level}: no queue depth or running "
                              "requests sampled")
            else:
                images.append(image)
        if images:
            blocks.append(PointBlock(title=point.label, images=tuple(images)))
    return blocks, skipped


def load_section(points: Sequence[ReportPoint], writer: FigureWriter) -> tuple[list[Image], list[str]]:
    """Plot TTFT, ITL and output tok/s per GPU against load, closed-loop and open-loop levels apart."""
    images: list[Image] = []
    for open_loop, name in ((False, "closed"), (True, "open")):
        image = writer.write(
            f"load-{name}-loop.png",
            f"TTFT, ITL and output tokens/s per GPU against {load_axis_label(open_loop)}",
            partial(load_figure, points, open_loop),
        )
        if image is not None:
            images.append(image)
    skipped = [] if images else ["no measured level"]
    return images, skipped


def pareto_section(points: Sequence[ReportPoint], writer: FigureWriter) -> tuple[Image | None, HtmlTable | None, list[str]]:
    """Plot output tok/s per GPU against tok/s per user with the frontier, and tabulate the frontier."""
    skipped: list[str] = []
    frontier = frontier_levels(points)
    image = writer.write(
        "pareto.png",
        "output tokens/s per GPU against output tokens/s per user, with the Pareto frontier",
        partial(pareto_figure, points, frontier),
    )
    if image is None:
        skip(skipped, "no level reports both interactivity_tps_per_user and output tok/s per GPU")
    isolated = sorted({point.point_id for point in points if point.isolated})
    if isolated:
        skip(skipped, f"isolated prefill and decode points ({', '.join(isolated)}) are drawn dashed "
                      "but left out of the frontier, because each measures one phase only")
    if not frontier:
        return image, None, skipped

    table = HtmlTable(
        headers=("point", "level", "output tok/s per user", "output tok/s per GPU"),
        rows=tuple(
            TableRow(cells=(level.point_label, level.level, f"{level.tps_per_user:,.1f}",
                            f"{level.tps_per_gpu:,.0f}"))
            for level in frontier
        ),
    )
    return image, table, skipped


def _isolated(frame: pd.DataFrame, role: Role, tokens: int, notes: list[str]) -> IsolatedCapacity | None:
    try:
        return isolated_capacity(frame, role, tokens)
    except SolverError as error:
        logger.warning("isolated %s runs not used for capacity: %s", role.value, error)
        notes.append(f"isolated {role.value} runs not used for capacity: {error}")
        return None


def _client_levels(point: ReportPoint) -> list[ClientLevel]:
    levels = []
    for _, row in point.levels.iterrows():
        levels.append(ClientLevel(
            level=str(row["level"]),
            load=level_load(row),
            valid=is_valid(row),
            request_throughput_rps=_optional(row, "request_throughput_rps"),
            input_throughput_tps=_optional(row, "input_throughput_tps"),
            output_throughput_tps=_optional(row, "output_throughput_tps"),
        ))
    return levels


def _load_label(point: ReportPoint) -> str:
    open_loop = {is_open_loop(row) for _, row in point.levels.iterrows()}
    if len(open_loop) == 1:
        return load_axis_label(open_loop.pop())
    return "load (concurrency, or requests/s for open-loop levels)"


def _decode_args(row: pd.Series) -> dict:
    """Return a decode worker's batch-limit args: engine.role_args.decode overridden by engine.args."""
    args = {}
    for key, _ in BATCH_LIMIT_KEYS:
        for column in (f"engine.role_args.decode.{key}", f"engine.args.{key}"):
            if not is_missing(row.get(column)):
                args[key] = row.get(column)
    return args


def _role_gpus_per_worker(row: pd.Series, role: str) -> int | None:
    """Return tp * dp * pp of mode.<role>_parallelism, or None when the point does not set it."""
    sizes = [row.get(f"mode.{role}_parallelism.{key}") for key in ("tp", "dp", "pp")]
    if any(is_missing(size) for size in sizes):
        return None
    return int(sizes[0]) * int(sizes[1]) * int(sizes[2])


def _decode_dp(row: pd.Series) -> int:
    """Return the DP size of a decode worker: mode.decode_parallelism.dp, else parallelism.dp."""
    if not is_missing(row.get("mode.decode_parallelism.dp")):
        return int(row.get("mode.decode_parallelism.dp"))
    return _int_or_one(row, "parallelism.dp")


def _optional(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return None if is_missing(value) else float(value)


def _int_or_one(row: pd.Series, column: str) -> int:
    value = row.get(column)
    return 1 if is_missing(value) else int(value)
