"""One raw record per request, failures included, and its table form for requests.parquet.

Records contain raw timestamps only. Every metric is computed from them afterwards (see
metrics.py), so a stored requests.parquet can always be summarized again. The table adds
derived per-request columns (DERIVED_SCHEMA) for readers of the file; reading a table
back keeps only the raw columns.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.loadgen.metrics import isl_delta, osl_delta, send_lag_ns
from harness.results.io import write_bytes_atomic

# Values of RequestRecord.error_type, which is None when the request succeeded.
ERROR_HTTP = "http_error"
ERROR_CONNECTION = "connection_error"
# No token arrived within ttft_timeout_s of the send.
ERROR_TTFT_TIMEOUT = "ttft_timeout"
# The stream did not end within timeout_s of the send.
ERROR_TIMEOUT = "timeout"
# An error payload, or an event that is not a JSON object, inside the stream.
ERROR_STREAM = "stream_error"
# The body ended, or the connection broke, before data: [DONE]. The tokens stay in the record.
ERROR_INCOMPLETE = "incomplete_stream"
ERROR_NO_TOKENS = "no_tokens"


@dataclass(slots=True)
class RequestRecord:
    """Raw timings and outcome of one request.

    Every *_perf_ns value is time.perf_counter_ns() of the sending process, so only
    differences between them are meaningful. send_wall_ns is time.time_ns() and is
    there to correlate with server logs and metrics.
    """

    request_id: int
    warmup: bool
    target_isl: int
    target_osl: int
    # When the request was due: its open-loop schedule time, or in closed loop the moment
    # its concurrency slot became free (the phase start for a slot's first request).
    scheduled_perf_ns: int
    send_perf_ns: int
    send_wall_ns: int
    headers_perf_ns: int | None = None
    # Arrival of every token-carrying event, stamped when its bytes were read. Events
    # parsed from one read share the stamp.
    token_perf_ns: list[int] = field(default_factory=list)
    # Tokens in each of those events (the same length as token_perf_ns).
    token_counts: list[int] = field(default_factory=list)
    # When the request finished: the read that carried [DONE], the end of the body,
    # or the moment the failure was detected.
    end_perf_ns: int | None = None
    usage_prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None
    status_code: int | None = None
    # None for success, else one of the ERROR_* values of this module.
    error_type: str | None = None
    error_message: str | None = None
    # Index of the client process that sent the request, 0 with a single process.
    client_process: int = 0

    @property
    def succeeded(self) -> bool:
        return self.error_type is None


RECORD_SCHEMA = pa.schema(
    [
        ("request_id", pa.int64()),
        ("warmup", pa.bool_()),
        ("target_isl", pa.int64()),
        ("target_osl", pa.int64()),
        ("scheduled_perf_ns", pa.int64()),
        ("send_perf_ns", pa.int64()),
        ("send_wall_ns", pa.int64()),
        ("headers_perf_ns", pa.int64()),
        ("token_perf_ns", pa.list_(pa.int64())),
        ("token_counts", pa.list_(pa.int64())),
        ("end_perf_ns", pa.int64()),
        ("usage_prompt_tokens", pa.int64()),
        ("usage_completion_tokens", pa.int64()),
        ("status_code", pa.int64()),
        ("error_type", pa.string()),
        ("error_message", pa.string()),
        ("client_process", pa.int64()),
    ]
)

# Per-request columns computed from the raw ones by metrics.py. send_lag_ns is set for
# every request. The deltas and mismatch flags are null for a failed request and when
# the server sent no usage.
DERIVED_SCHEMA = pa.schema(
    [
        ("send_lag_ns", pa.int64()),
        ("isl_delta", pa.int64()),
        ("osl_delta", pa.int64()),
        ("isl_mismatch", pa.bool_()),
        ("osl_mismatch", pa.bool_()),
    ]
)

# Raw columns added after the first version of requests.parquet, with the value that
# files written before them get on reading.
_ADDED_FIELD_DEFAULTS = {"client_process": 0}

_FIELD_NAMES = tuple(f.name for f in fields(RequestRecord))
assert _FIELD_NAMES == tuple(RECORD_SCHEMA.names), "RECORD_SCHEMA must list RequestRecord's fields in order"


def records_to_table(records: Iterable[RequestRecord]) -> pa.Table:
    """Build an Arrow table with one row per record: the raw columns, then DERIVED_SCHEMA's."""
    columns: dict[str, list] = {name: [] for name in _FIELD_NAMES + tuple(DERIVED_SCHEMA.names)}
    for record in records:
        for name in _FIELD_NAMES:
            columns[name].append(getattr(record, name))
        isl = isl_delta(record)
        osl = osl_delta(record)
        columns["send_lag_ns"].append(send_lag_ns(record))
        columns["isl_delta"].append(isl)
        columns["osl_delta"].append(osl)
        columns["isl_mismatch"].append(None if isl is None else isl != 0)
        columns["osl_mismatch"].append(None if osl is None else osl != 0)
    schema = pa.schema(list(RECORD_SCHEMA) + list(DERIVED_SCHEMA))
    return pa.Table.from_pydict(columns, schema=schema)


def records_to_frame(records: Iterable[RequestRecord]) -> pd.DataFrame:
    """Build a DataFrame with one row per record, ready for DataFrame.to_parquet.

    Integer columns use pandas' nullable Int64, because a float column would lose
    nanoseconds (time.time_ns() is above 2**53) and a missing value must stay missing.
    The token_perf_ns and token_counts cells are Python lists of int.
    """
    table = records_to_table(records)
    frame = table.to_pandas(types_mapper=_pandas_type)
    for name in ("token_perf_ns", "token_counts"):
        frame[name] = pd.Series(table.column(name).to_pylist(), dtype=object)
    return frame


def records_from_frame(frame: pd.DataFrame) -> list[RequestRecord]:
    """Rebuild records from a frame of records_to_frame or from a read requests.parquet."""
    frame = frame.copy()
    for name, default in _ADDED_FIELD_DEFAULTS.items():
        if name not in frame.columns:
            frame[name] = default
    missing = [name for name in _FIELD_NAMES if name not in frame.columns]
    if missing:
        raise ValueError(f"records frame is missing the columns {missing}; it was not written by records_to_frame")

    table = pa.Table.from_pandas(frame[list(_FIELD_NAMES)], schema=RECORD_SCHEMA, preserve_index=False)
    return [RequestRecord(**row) for row in table.to_pylist()]


def write_records_parquet(path: Path | str, records: Iterable[RequestRecord]) -> None:
    """Write records to a Parquet file atomically, with RECORD_SCHEMA's column types.

    Prefer this to DataFrame.to_parquet: with no records, pandas cannot tell the type of
    the list columns and writes them as null columns.
    """
    sink = pa.BufferOutputStream()
    pq.write_table(records_to_table(records), sink)
    write_bytes_atomic(path, sink.getvalue().to_pybytes())


def read_records_parquet(path: Path | str) -> list[RequestRecord]:
    """Read the records of a requests.parquet written by this module or by DataFrame.to_parquet."""
    table = pq.read_table(path)
    for name, default in _ADDED_FIELD_DEFAULTS.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.array([default] * table.num_rows, pa.int64()))
    missing = [name for name in _FIELD_NAMES if name not in table.column_names]
    if missing:
        raise ValueError(f"{path} is missing the columns {missing}; it is not a requests.parquet of harness")
    table = table.select(list(_FIELD_NAMES)).cast(RECORD_SCHEMA)
    return [RequestRecord(**row) for row in table.to_pylist()]


def _pandas_type(arrow_type: pa.DataType):
    if arrow_type == pa.int64():
        return pd.Int64Dtype()
    if arrow_type == pa.bool_():
        return pd.BooleanDtype()
    if arrow_type == pa.string():
        return pd.StringDtype()
    return None
