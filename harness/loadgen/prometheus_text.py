"""Parse the Prometheus text exposition format that engines serve on /metrics.

Follows text format 0.0.4 as prometheus_client, vLLM and SGLang write it: HELP and TYPE
lines, other comments, blank lines, label values with \\\\, \\" and \\n escapes, the
values +Inf, -Inf and NaN, and an optional integer timestamp in milliseconds. It also
reads the OpenMetrics additions that such servers may send: an exemplar after " # ",
a timestamp in float seconds, and the quoted metric names of Prometheus 3
({"name.with.dots", label="x"}).

A line that breaks the format raises ExpositionError, so that a truncated or
non-Prometheus response is a failed scrape rather than wrong numbers, as in Prometheus.
"""

import re
from dataclasses import dataclass, field

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_COUNTER_SUFFIX = "_total"


class ExpositionError(ValueError):
    """A line of a /metrics response is not valid Prometheus text format."""

    def __init__(self, line_number: int, line: str, reason: str) -> None:
        shown = line if len(line) <= 120 else line[:117] + "..."
        super().__init__(f"line {line_number} of the /metrics text is invalid ({reason}): {shown!r}")
        self.line_number = line_number


@dataclass(frozen=True)
class Sample:
    """One sample line: a metric name, its labels, its value and an optional timestamp."""

    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class MetricTotal:
    """Sum of the samples of one metric name over all of its label sets."""

    # The name found in the exposition, which may differ from the requested one by _total.
    name: str
    value: float
    # Number of samples (label sets) summed, e.g. one per data-parallel rank.
    series: int


@dataclass
class Exposition:
    """Samples of one /metrics response, with the HELP text and TYPE of each metric family."""

    samples: list[Sample] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)

    def total(self, name: str) -> MetricTotal | None:
        """Sum the samples named `name` across label sets, or return None when it is absent.

        A counter is exposed as foo_total by prometheus_client but may be configured as
        foo (or the other way round), so the name with the _total suffix added or
        removed is tried when the exact name has no sample.
        """
        for candidate in _name_candidates(name):
            matching = [sample.value for sample in self.samples if sample.name == candidate]
            if matching:
                return MetricTotal(name=candidate, value=sum(matching), series=len(matching))
        return None


def parse_exposition(text: str) -> Exposition:
    """Parse a /metrics response body; raise ExpositionError for the first invalid line."""
    exposition = Exposition()
    for line_number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith("#"):
            _read_comment(line, exposition)
        else:
            exposition.samples.append(_parse_sample(line, line_number))
    return exposition


def _name_candidates(name: str) -> list[str]:
    if name.endswith(_COUNTER_SUFFIX):
        return [name, name.removesuffix(_COUNTER_SUFFIX)]
    return [name, name + _COUNTER_SUFFIX]


def _read_comment(line: str, exposition: Exposition) -> None:
    """Store a HELP or TYPE line; other comments (and OpenMetrics' # EOF) carry no data."""
    parts = line[1:].split(None, 2)
    if len(parts) < 2:
        return
    keyword, name = parts[0], parts[1]
    rest = parts[2] if len(parts) == 3 else ""
    if keyword == "HELP":
        exposition.help[name] = _unescape(rest)
    elif keyword == "TYPE":
        exposition.types[name] = rest.strip()


def _parse_sample(line: str, line_number: int) -> Sample:
    name: str | None = None
    position = 0
    match = _METRIC_NAME.match(line)
    if match is not None:
        name = match.group()
        position = match.end()

    labels: dict[str, str] = {}
    position = _skip_blanks(line, position)
    if position < len(line) and line[position] == "{":
        labels, quoted_name, position = _parse_label_set(line, position + 1, line_number)
        if quoted_name is not None:
            if name is not None:
                raise ExpositionError(line_number, line, "two metric names")
            name = quoted_name
    if name is None:
        raise ExpositionError(line_number, line, "no metric name")

    # An OpenMetrics exemplar follows " # " and describes one observation, not the value.
    fields = line[position:].split("#", 1)[0].split()
    if len(fields) not in (1, 2):
        raise ExpositionError(line_number, line, "expected a value and an optional timestamp")
    value = _parse_float(fields[0], line, line_number)
    timestamp_ms = _parse_timestamp_ms(fields[1], line, line_number) if len(fields) == 2 else None
    return Sample(name=name, labels=labels, value=value, timestamp_ms=timestamp_ms)


def _parse_label_set(line: str, position: int, line_number: int) -> tuple[dict[str, str], str | None, int]:
    """Parse from after "{" to after "}"; return the labels, a quoted metric name, the position."""
    labels: dict[str, str] = {}
    quoted_name: str | None = None
    while True:
        position = _skip_blanks(line, position)
        if position >= len(line):
            raise ExpositionError(line_number, line, "label set without a closing brace")
        if line[position] == "}":
            return labels, quoted_name, position + 1

        if line[position] == '"':
            text, position = _parse_quoted(line, position, line_number)
            position = _skip_blanks(line, position)
            if position < len(line) and line[position] != "=":
                # A quoted string without "=" is a Prometheus 3 metric name.
                if quoted_name is not None:
                    raise ExpositionError(line_number, line, "two metric names")
                quoted_name = text
                position = _expect_separator(line, position, line_number)
                continue
            label_name = text
        else:
            match = _LABEL_NAME.match(line, position)
            if match is None:
                raise ExpositionError(line_number, line, f"invalid label name at column {position + 1}")
            label_name = match.group()
            position = _skip_blanks(line, match.end())

        if position >= len(line) or line[position] != "=":
            raise ExpositionError(line_number, line, f"expected = after label {label_name}")
        position = _skip_blanks(line, position + 1)
        if position >= len(line) or line[position] != '"':
            raise ExpositionError(line_number, line, f"value of label {label_name} is not quoted")
        labels[label_name], position = _parse_quoted(line, position, line_number)
        position = _expect_separator(line, _skip_blanks(line, position), line_number)


def _expect_separator(line: str, position: int, line_number: int) -> int:
    """Step over the "," after a label; leave a "}" for the caller, which ends the set."""
    if position >= len(line):
        raise ExpositionError(line_number, line, "label set without a closing brace")
    if line[position] == ",":
        return position + 1
    if line[position] == "}":
        return position
    raise ExpositionError(line_number, line, f"expected , or }} at column {position + 1}")


def _parse_quoted(line: str, position: int, line_number: int) -> tuple[str, int]:
    """Read the string that starts with the quote at position; return it and the position after it."""
    characters: list[str] = []
    index = position + 1
    while index < len(line):
        character = line[index]
        if character == '"':
            return "".join(characters), index + 1
        if character == "\\" and index + 1 < len(line):
            following = line[index + 1]
            # Unknown escapes are kept as written, as prometheus_client never emits them.
            characters.append(_ESCAPES.get(following, "\\" + following))
            index += 2
            continue
        characters.append(character)
        index += 1
    raise ExpositionError(line_number, line, "quoted string without a closing quote")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda match: _ESCAPES.get(match.group(1), match.group()), text)


def _skip_blanks(line: str, position: int) -> int:
    while position < len(line) and line[position] in " \t":
        position += 1
    return position


def _parse_float(text: str, line: str, line_number: int) -> float:
    # float() reads +Inf, -Inf and NaN in any case, as the format requires.
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(line_number, line, f"value {text!r} is not a number") from None


def _parse_timestamp_ms(text: str, line: str, line_number: int) -> int:
    """Read an integer timestamp in ms (text format) or a float in seconds (OpenMetrics)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return round(float(text) * 1000)
    except (ValueError, OverflowError):
        raise ExpositionError(line_number, line, f"timestamp {text!r} is not a number") from None
