"""Load generator: closed- and open-loop levels of streaming requests, one raw record per request.

run_level() runs one level and returns its records, its summary and a DataFrame of the
records. summary.py computes every figure of the summary from the records alone.
"""

from harness.loadgen.records import RequestRecord
from harness.loadgen.runner import LevelProgress, LevelResult, LevelSpec, ValidityThresholds, run_level

__all__ = ["LevelProgress", "LevelResult", "LevelSpec", "RequestRecord", "ValidityThresholds", "run_level"]
