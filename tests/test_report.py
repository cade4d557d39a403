"""End to end: `harness report` over a real simulator sweep plus a synthetic disaggregated point.

The page is loaded in headless Chromium from a file:// URL to check that every image decodes.
"""

import io
import json
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from harness.errors import ResultsError
from harness.report.command import report_command
from test_report_tree import write_disagg_point

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Appended to a copy of index.html, so that Chromium writes each image's decoded width
# into the DOM that --dump-dom prints.
IMAGE_CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const lines = Array.from(document.images, (image) => image.getAttribute("src") + " " + image.naturalWidth);
  const output = document.createElement("pre");
  output.id = "image-check";
  output.textContent = lines.join("\\n");
  document.body.appendChild(output);
});
</script>"""


class PageParser(HTMLParser):
    """Collect img sources, every src and href, script tags, and each table as rows of cell text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes["src"])
        self.links.extend(value for name, value in attrs if name in ("src", "href"))
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Run a one-point prefill sweep of the simulator, add a synthetic disagg point, and report."""
    results = tmp_path_factory.mktemp("results")
    sweep = subprocess.run(
        [sys.executable, "-m", "harness", "sweep", "+experiment=prefill_dep8", f"results_dir={results}",
         "bench.concurrency=[1,2]", "bench.requests_per_level=6", "bench.warmup_requests=0",
         # One point is enough, and halves the time of the fixture.
         "engine.args.chunked_prefill_size=4096"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    write_disagg_point(results / "disagg_exp" / "20260101-000000")

    output = io.StringIO()
    status = report_command([str(results)], None, Console(file=output, width=120))
    report_dir = results / "report"
    parser = PageParser()
    parser.feed((report_dir / "index.html").read_text(encoding="utf-8"))
    return status, report_dir, parser, output.getvalue()


def table_starting_with(parser: PageParser, *headers: str) -> list[list[str]]:
    for table in parser.tables:
        if table and tuple(table[0][:len(headers)]) == headers:
            return table
    raise AssertionError(f"no table with headers {headers}; headers: {[t[0] for t in parser.tables if t]}")


def test_report_command_status(report):
    status, report_dir, _, output = report
    assert status == 0
    assert f"report written to {report_dir / 'index.html'}" in output.replace("\n", "")


def test_report_images_are_png(report):
    _, report_dir, parser, _ = report
    # Section 1: one disagg point; 2: 2 levels x 2 points; 3: closed loop; 4: the frontier.
    assert len(parser.images) == 7
    for name in parser.images:
        data = (report_dir / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        width, height = struct.unpack(">II", data[16:24])
        assert width > 0, name
        assert height > 0, name


def test_report_offline(report):
    _, _, parser, _ = report
    assert parser.scripts == 0
    external = [link for link in parser.links if "//" in link or link.startswith("/")]
    assert external == []


def test_report_renders_in_chromium(report, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found; run `apt-get install -y chromium` to run this test")
    _, report_dir, parser, _ = report
    check_page = report_dir / "image-check.html"
    html = (report_dir / "index.html").read_text(encoding="utf-8")
    check_page.write_text(html.replace("</body>", IMAGE_CHECK_SCRIPT + "</body>"), encoding="utf-8")

    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", check_page.as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    checks = dom.split('<pre id="image-check">', 1)[1].split("</pre>", 1)[0].splitlines()
    widths = dict(line.rsplit(" ", 1) for line in checks)
    assert sorted(widths) == sorted(parser.images)
    for name, width in widths.items():
        assert int(width) > 0, name


def test_report_rate_match_numbers(report):
    _, _, parser, _ = report
    table = table_starting_with(parser, "concurrency (requests in flight)", "level")
    rows = {row[1]: row for row in table[1:]}
    header = table[0]
    c4 = dict(zip(header, rows["c4"]))
    # Hand-computed in test_report_tree.py: prefill 12000 tokens / 2 s, decode 200 + 200 tok/s.
    assert c4["achieved requests/s"] == "4.000"
    assert c4["client input tok/s"] == "5,000"
    # 5000 / ISL 1000 and 380 / OSL 100.
    assert c4["client input tok/s / ISL"] == "5.000"
    assert c4["client output tok/s / OSL"] == "3.800"
    assert c4["prefill pool input tok/s"] == "6,000"
    assert c4["prefill pool requests/s"] == "6.000"
    assert c4["prefill capacity requests/s"] == "12.000 (busy-time estimate)"
    assert c4["decode pool output tok/s"] == "400"
    assert c4["decode pool requests/s"] == "4.000"
    assert c4["decode capacity requests/s"] == "16.000 (running-batch estimate)"
    c8 = dict(zip(header, rows["c8"]))
    assert c8["prefill capacity requests/s"] == "12.500 (busy-time estimate)"
    assert c8["decode capacity requests/s"] == "11.200 (running-batch estimate)"
    assert c8["valid"] == "no"


def test_report_isolated_isl_mismatch_noted(report):
    _, report_dir, _, _ = report
    html = (report_dir / "index.html").read_text(encoding="utf-8")
    # The sweep's prefill point ran at ISL 8192, so it cannot give the ISL 1000 capacity.
    assert "isolated prefill runs not used for capacity" in html
    assert "ISL 1000" in html


def test_report_invalid_level_flags(report):
    _, _, parser, _ = report
    table = table_starting_with(parser, "point", "experiment / sweep")
    flag_rows = [row[0] for row in table if len(row) == 1]
    assert "invalid: error_rate 0.09 > 0.05" in flag_rows


def test_report_levels_table_rows(report):
    _, _, parser, _ = report
    table = table_starting_with(parser, "point", "experiment / sweep")
    level_rows = [row for row in table[1:] if len(row) > 1]
    # 2 levels of the sweep's point and 2 of the synthetic one.
    assert len(level_rows) == 4


def test_report_without_server_metrics(tmp_path):
    point_dir = write_disagg_point(tmp_path / "disagg_exp" / "20260101-000000")
    (point_dir / "server_metrics.parquet").unlink()
    report_command([str(tmp_path)], str(tmp_path / "out"), Console(file=io.StringIO()))

    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "point disagg0001: no server_metrics.parquet" in html
    parser = PageParser()
    parser.feed(html)
    # Section 1 and sections 3 and 4 remain; no time series is drawn.
    assert not any(name.startswith("timeseries-") for name in parser.images)
    assert "ratematch-disagg0001.png" in parser.images


def test_report_empty_folder(tmp_path):
    with pytest.raises(ResultsError, match="no point folder"):
        report_command([str(tmp_path)], None, Console(file=io.StringIO()))


def test_report_open_loop_levels(tmp_path):
    point_dir = write_disagg_point(tmp_path / "disagg_exp" / "20260101-000000")
    for level, rate in (("c4", 2.0), ("c8", 4.0)):
        path = point_dir / "levels" / level / "summary.json"
        summary = json.loads(path.read_text())
        summary["request_rate"] = rate
        path.write_text(json.dumps(summary))
    report_command([str(tmp_path)], str(tmp_path / "out"), Console(file=io.StringIO()))

    parser = PageParser()
    parser.feed((tmp_path / "out" / "index.html").read_text(encoding="utf-8"))
    assert "load-open-loop.png" in parser.images
    assert "load-closed-loop.png" not in parser.images
    table = table_starting_with(parser, "request rate (requests/s, open loop)", "level")
    assert [row[0] for row in table[1:]] == ["2", "4"]
