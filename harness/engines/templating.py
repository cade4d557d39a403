"""The Jinja environment of the engine templates in templates/.

An argv template writes one argument per line. Lines are stripped and empty lines
dropped, so no shell ever parses the result and a value with spaces stays one argument.
File templates (an options YAML) render text as is. Templates can call fail(message)
to reject a configuration, and use the filters to_json, to_yaml, merge (a deep
merge of mappings), omit_null and flags.
"""

import functools
import json
from collections.abc import Mapping
from typing import Any

import jinja2
import yaml

from harness.config.compose import templates_dir
from harness.engines.flags import render_flags, to_plain
from harness.errors import ConfigError


class TemplateRejected(Exception):
    """Raised by fail(message) inside a template."""


def _fail(message: str) -> None:
    raise TemplateRejected(message)


def _to_json(value: Any) -> str:
    return json.dumps(to_plain(value), separators=(",", ":"))


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(to_plain(value), sort_keys=False, default_flow_style=False).rstrip("\n")


def _omit_null(value: Any) -> Any:
    """Drop null values from nested mappings, as a flag with a null value is not rendered.

    A mapping that held only nulls is dropped too, so that `kv_cache_config:
    {free_gpu_memory_fraction: null}` leaves the release's whole default in place.
    """
    if not isinstance(value, Mapping):
        return value
    result = {}
    for key, item in value.items():
        cleaned = _omit_null(item)
        if cleaned is None or (isinstance(item, Mapping) and item and not cleaned):
            continue
        result[key] = cleaned
    return result


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge override into base, recursing into mappings that both sides have."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@functools.cache
def _environment(directory: str) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    environment.globals["fail"] = _fail
    environment.filters["to_json"] = _to_json
    environment.filters["to_yaml"] = _to_yaml
    environment.filters["merge"] = merge
    environment.filters["omit_null"] = _omit_null
    environment.filters["flags"] = render_flags
    return environment


def environment() -> jinja2.Environment:
    return _environment(str(templates_dir()))


def render_text(template_name: str, context: Mapping[str, Any], owner: str) -> str:
    """Render a template file to text; owner names the engine and process in errors."""
    try:
        template = environment().get_template(template_name)
    except jinja2.TemplateNotFound:
        raise ConfigError(
            f"{owner}: template {template_name!r} not found in {templates_dir()}"
        ) from None
    return _render(template, context, owner, template_name)


def render_argv(template_name: str, context: Mapping[str, Any], owner: str) -> list[str]:
    """Render an argv template: one argument per non-empty line."""
    text = render_text(template_name, context, owner)
    return [line.strip() for line in text.splitlines() if line.strip()]


def render_string(source: str, context: Mapping[str, Any], owner: str) -> str:
    """Render a template given as a string, such as an engine.env value."""
    if "{" not in source:
        return source
    try:
        template = environment().from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise ConfigError(f"{owner}: invalid template {source!r}: {error}") from None
    return _render(template, context, owner, repr(source))


def _render(template: jinja2.Template, context: Mapping[str, Any], owner: str, name: str) -> str:
    try:
        return template.render(**context)
    except TemplateRejected as rejection:
        raise ConfigError(f"{owner}: {rejection}") from None
    except jinja2.TemplateError as error:
        raise ConfigError(f"{owner}: template {name} failed to render: {error}") from None
