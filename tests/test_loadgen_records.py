"""Tests of harness.loadgen.records (table form, Parquet round trip) and prompts."""

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.loadgen.prompts import build_request_body, chat_prompt_text, completion_token_ids
from harness.loadgen.records import (
    RequestRecord,
    read_records_parquet,
    records_from_frame,
    records_to_frame,
    records_to_table,
    write_records_parquet,
)

# time.time_ns() is above 2**53, where a float64 column would round it.
WALL_NS = 1_733_000_000_000_000_123

RECORDS = [
    RequestRecord(0, True, 10, 3, 100, 110, WALL_NS, 150, [200, 250], [1, 2], 260, 10, 3, 200),
    RequestRecord(1, False, 10, 3, 300, 310, WALL_NS + 1, None, [], [], 320, None, None, None, "connection_error", "refused"),
]


def test_frame_keeps_exact_nanoseconds():
    frame = records_to_frame(RECORDS)

    assert frame["send_wall_ns"].tolist() == [WALL_NS, WALL_NS + 1]


def test_frame_missing_values_are_na():
    frame = records_to_frame(RECORDS)

    assert frame["headers_perf_ns"].isna().tolist() == [False, True]


def test_frame_token_columns_are_lists():
    frame = records_to_frame(RECORDS)

    assert frame["token_counts"].tolist() == [[1, 2], []]


def test_frame_parquet_round_trip(tmp_path):
    path = tmp_path / "requests.parquet"
    records_to_frame(RECORDS).to_parquet(path, index=False)

    assert read_records_parquet(path) == RECORDS


def test_frame_parquet_has_list_columns(tmp_path):
    path = tmp_path / "requests.parquet"
    records_to_frame(RECORDS).to_parquet(path, index=False)

    assert pq.read_schema(path).field("token_perf_ns").type == pa.list_(pa.int64())


def test_records_from_read_frame(tmp_path):
    path = tmp_path / "requests.parquet"
    records_to_frame(RECORDS).to_parquet(path, index=False)

    assert records_from_frame(pd.read_parquet(path)) == RECORDS


def test_write_records_empty_keeps_types(tmp_path):
    path = tmp_path / "requests.parquet"
    write_records_parquet(path, [])

    assert pq.read_schema(path).field("token_counts").type == pa.list_(pa.int64())
    assert read_records_parquet(path) == []


def test_write_records_round_trip(tmp_path):
    path = tmp_path / "requests.parquet"
    write_records_parquet(path, RECORDS)

    assert read_records_parquet(path) == RECORDS


def test_read_records_rejects_other_table(tmp_path):
    path = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(path)

    with pytest.raises(ValueError, match="missing the columns"):
        read_records_parquet(path)


def test_prompt_ids_exact_length_and_range():
    ids = completion_token_ids(request_id=3, isl=500, vocab_size=50, seed_key=(0, 4))

    assert len(ids) == 500
    assert min(ids) >= 0
    assert max(ids) < 50


def test_prompt_ids_reproducible():
    first = completion_token_ids(7, 64, 32000, (1, 8))

    assert completion_token_ids(7, 64, 32000, (1, 8)) == first


def test_prompt_ids_unique_first_token():
    # 50 consecutive ids with a vocabulary of 50: the first tokens are a permutation.
    first_ids = {completion_token_ids(i, 8, 50, (0, 1))[0] for i in range(50)}

    assert len(first_ids) == 50


def test_prompt_ids_differ_between_levels():
    assert completion_token_ids(0, 16, 32000, (0, 1)) != completion_token_ids(0, 16, 32000, (0, 2))


def test_prompt_ids_reject_zero_isl():
    with pytest.raises(ValueError, match="isl=0"):
        completion_token_ids(0, 0, 100, (0,))


def test_chat_text_word_count():
    text = chat_prompt_text(request_id=12, isl=40, seed_key=(0, 1))

    # request id + 39 words
    assert len(text.split()) == 40
    assert text.split()[0] == "12"


def test_body_completions_fields():
    body = json.loads(build_request_body("completions", "tiny", 0, 16, 5, 1000, (0, 1)))

    assert body["model"] == "tiny"
    assert len(body["prompt"]) == 16
    assert body["max_tokens"] == 5
    assert body["min_tokens"] == 5
    assert body["ignore_eos"] is True
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_body_chat_fields():
    body = json.loads(build_request_body("chat", "tiny", 0, 16, 5, 1000, (0, 1)))

    assert body["messages"][0]["role"] == "user"
    assert "prompt" not in body


def test_body_rejects_unknown_endpoint():
    with pytest.raises(ValueError, match="'embeddings'"):
        build_request_body("embeddings", "tiny", 0, 16, 5, 1000, (0, 1))


def test_frame_derived_columns():
    frame = records_to_frame(RECORDS)

    # record 0: sent at 110, due at 100; usage 10 and 3 equal the targets
    assert frame["send_lag_ns"].tolist() == [10, 10]
    assert frame["osl_delta"].tolist()[0] == 0
    assert frame["osl_mismatch"].tolist()[0] is False
    # record 1 failed, so it has no deltas
    assert frame["isl_delta"].isna().tolist() == [False, True]


def test_read_records_without_client_process(tmp_path):
    # A file written before the client_process column existed.
    path = tmp_path / "requests.parquet"
    table = records_to_table(RECORDS).drop(["client_process"])
    pq.write_table(table, path)

    assert [record.client_process for record in read_records_parquet(path)] == [0, 0]
