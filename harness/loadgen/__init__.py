"""Load generator: closed-loop levels of streaming requests, one raw record per request.

run_level() runs one level and returns its records, its summary and a DataFrame of the
records. metrics.py computes every figure of the summary from the records alone.
"""

from harness.loadgen.records import RequestRecord
from harness.loadgen.runner import LevelResult, LevelSpec, run_level

__all__ = ["LevelResult", "LevelSpec", "RequestRecord", "run_level"]
