"""harness: benchmark and rate-match disaggregated prefill and decode LLM serving."""

__version__ = "0.1.0"
