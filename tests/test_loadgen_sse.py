"""Tests of harness.loadgen.sse: each WHATWG event-stream rule, with the input split at
every byte boundary and also fed one byte at a time. The parser returns each event's
data as bytes."""

import pytest

from harness.loadgen.sse import SSEParser


def parse_whole(stream: bytes) -> list[bytes]:
    return SSEParser().feed(stream)


def parse_in_two(stream: bytes, cut: int) -> list[bytes]:
    parser = SSEParser()
    return parser.feed(stream[:cut]) + parser.feed(stream[cut:])


def parse_bytewise(stream: bytes) -> list[bytes]:
    parser = SSEParser()
    events: list[bytes] = []
    for i in range(len(stream)):
        events += parser.feed(stream[i : i + 1])
    return events


def assert_parses_to(stream: bytes, expected: list[bytes]) -> None:
    assert parse_whole(stream) == expected
    assert parse_bytewise(stream) == expected
    for cut in range(len(stream) + 1):
        assert parse_in_two(stream, cut) == expected, f"split at byte {cut}"


CASES = {
    "lf": (b"data: a\n\ndata: b\n\n", [b"a", b"b"]),
    "crlf": (b"data: a\r\n\r\ndata: b\r\n\r\n", [b"a", b"b"]),
    "cr": (b"data: a\r\rdata: b\r\r", [b"a", b"b"]),
    "mixed_endings": (b"data: a\r\n\rdata: b\n\r\n", [b"a", b"b"]),
    "no_space_after_colon": (b"data:a\n\n", [b"a"]),
    "only_one_space_removed": (b"data:  a\n\n", [b" a"]),
    "comment_lines": (b": keep-alive\ndata: a\n: note\n\n: alone\n\n", [b"a"]),
    "other_fields_ignored": (b"event: message\nid: 7\nretry: 10\nfoo: bar\ndata: a\nevent\n\n", [b"a"]),
    "field_with_data_prefix_ignored": (b"dataset: x\ndata: a\n\n", [b"a"]),
    # Buffer "a\nb\n\n" minus the final LF.
    "multi_line_data": (b"data: a\ndata: b\ndata:\n\n", [b"a\nb\n"]),
    "field_name_without_colon": (b"data\n\n", [b""]),
    "blank_lines_without_data": (b"\n\n\ndata: a\n\n\n", [b"a"]),
    "field_name_is_case_sensitive": (b"Data: a\n\n", []),
    "byte_order_mark": (b"\xef\xbb\xbfdata: a\n\n", [b"a"]),
    "utf8_split_inside_character": ("data: h\u00e9llo \u4e16\n\n".encode(), ["h\u00e9llo \u4e16".encode()]),
    "incomplete_event_dropped": (b"data: a\n\ndata: b\n", [b"a"]),
    "done_ends_stream": (b"data: a\n\ndata: [DONE]\n\ndata: b\n\n", [b"a"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_sse_rule(name):
    stream, expected = CASES[name]
    assert_parses_to(stream, expected)


def test_sse_crlf_split_across_reads():
    parser = SSEParser()

    assert parser.feed(b"data: a\r") == []
    # A second line ending here would dispatch "a"; the LF only completes the CRLF.
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [b"a"]


def test_sse_done_sets_flag_and_ignores_rest():
    parser = SSEParser()

    assert parser.feed(b"data: [DONE]\n\n") == []
    assert parser.done is True
    assert parser.feed(b"data: late\n\n") == []


def test_sse_bom_only_at_start():
    # A BOM after the first byte is part of the data.
    assert parse_whole(b"data: \xef\xbb\xbfa\n\n") == [b"\xef\xbb\xbfa"]


def test_sse_long_line_in_many_reads():
    value = b"x" * 1_000_003
    stream = b"data: " + value + b"\n\n"
    parser = SSEParser()
    events: list[bytes] = []
    for start in range(0, len(stream), 4096):
        events += parser.feed(stream[start : start + 4096])

    assert events == [value]


def test_sse_many_events_in_one_read():
    stream = b"".join(b"data: %d\n\n" % i for i in range(100))

    assert parse_whole(stream) == [b"%d" % i for i in range(100)]
