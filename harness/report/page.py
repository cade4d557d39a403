"""The report's index.html: one static page with inline CSS and no script, readable offline.

The template lives here rather than in a .j2 file, so that an installed wheel needs no
package data.
"""

from dataclasses import dataclass, field

import jinja2

from harness.report.html_tables import HtmlTable


@dataclass(frozen=True)
class Image:
    """A PNG beside index.html, by file name."""

    src: str
    alt: str


@dataclass(frozen=True)
class SweepInfo:
    experiment: str
    sweep: str
    created: str
    harness_version: str
    git_revision: str


@dataclass(frozen=True)
class PointBlock:
    """One point's part of a section: its figures, an optional table and notes."""

    title: str
    images: tuple[Image, ...] = ()
    table: HtmlTable | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PageContent:
    generated: str
    harness_version: str
    experiments: tuple[str, ...]
    sweeps: tuple[SweepInfo, ...]
    rate_match: tuple[PointBlock, ...]
    timeseries: tuple[PointBlock, ...]
    load_images: tuple[Image, ...]
    pareto_image: Image | None
    frontier: HtmlTable | None
    levels: HtmlTable
    # What was skipped and why, per section number.
    skipped: dict[int, list[str]] = field(default_factory=dict)


_TEMPLATE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>harness report: {{ page.experiments | join(", ") }}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1500px; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
tr.invalid td { background: #fde8e8; }
tr.flags td { background: #fff6f6; text-align: left; font-size: 0.9em; color: #8a1c1c; }
img { max-width: 100%; border: 1px solid #ddd; }
.grid { display: flex; flex-wrap: wrap; gap: 0.5em; }
.grid img { width: 520px; }
.note { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>harness report</h1>
<p>Generated {{ page.generated }} by harness {{ page.harness_version }}.
Experiments: {{ page.experiments | join(", ") }}.</p>
{% if page.sweeps %}
<table>
<tr><th>experiment</th><th>sweep</th><th>created</th><th>harness version</th><th>git revision</th></tr>
{% for sweep in page.sweeps %}
<tr><td>{{ sweep.experiment }}</td><td>{{ sweep.sweep }}</td><td>{{ sweep.created }}</td>
<td>{{ sweep.harness_version }}</td><td>{{ sweep.git_revision }}</td></tr>
{% endfor %}
</table>
{% endif %}
<p class="note">Hollow markers are invalid levels; their flags are in the table of collected levels.</p>

<h2>1. Rate matching of disaggregated points</h2>
{{ notes(page.skipped.get(1, [])) }}
{% for block in page.rate_match %}{{ point_block(block) }}{% endfor %}

<h2>2. Prefill queue depth and decode running batch over time</h2>
{{ notes(page.skipped.get(2, [])) }}
{% for block in page.timeseries %}{{ point_block(block, "grid") }}{% endfor %}

<h2>3. Latency and throughput against load</h2>
{{ notes(page.skipped.get(3, [])) }}
{% for image in page.load_images %}<p><img src="{{ image.src }}" alt="{{ image.alt }}"></p>{% endfor %}

<h2>4. Output tokens/s per GPU against tokens/s per user</h2>
{{ notes(page.skipped.get(4, [])) }}
{% if page.pareto_image %}<p><img src="{{ page.pareto_image.src }}" alt="{{ page.pareto_image.alt }}"></p>{% endif %}
{% if page.frontier %}<h3>Levels on the Pareto frontier</h3>{{ table(page.frontier) }}{% endif %}

<h2>Collected levels</h2>
{{ table(page.levels) }}
</body>
</html>
"""

_MACROS = """\
{% macro table(data) %}
<table>
<tr>{% for header in data.headers %}<th>{{ header }}</th>{% endfor %}</tr>
{% for row in data.rows %}
<tr{% if row.invalid %} class="invalid"{% endif %}>{% for cell in row.cells %}<td>{{ cell }}</td>{% endfor %}</tr>
{% if row.flags %}<tr class="flags"><td colspan="{{ data.headers | length }}">invalid: {{ row.flags }}</td></tr>{% endif %}
{% endfor %}
</table>
{% endmacro %}
{% macro notes(texts) %}
{% for text in texts %}<p class="note">{{ text }}</p>{% endfor %}
{% endmacro %}
{% macro point_block(block, layout="") %}
<h3>{{ block.title }}</h3>
{{ notes(block.notes) }}
<div class="{{ layout }}">{% for image in block.images %}<img src="{{ image.src }}" alt="{{ image.alt }}">{% endfor %}</div>
{% if block.table %}{{ table(block.table) }}{% endif %}
{% endmacro %}
"""


def render_page(page: PageContent) -> str:
    """Render index.html with every text HTML-escaped."""
    environment = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    macros = environment.from_string(_MACROS).module
    template = environment.from_string(_TEMPLATE)
    return template.render(page=page, table=macros.table, point_block=macros.point_block, notes=macros.notes)
