"""Split command-line overrides into fixed ones and sweep axes, and format values back.

Uses Hydra's own override parser, so `a=1,2`, `a=range(1,4)` and `a=choice(x,y)` sweep an
axis exactly as they would under `hydra --multirun`.
"""

import re
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import HydraException

from harness.config.compose import conf_dir
from harness.errors import ConfigError

# A string that Hydra's grammar reads back as the same string without quotes.
_BARE_STRING = re.compile(r"^[A-Za-z_/][\w./\-:@]*$")
_RESERVED = {"true", "false", "null", "nan", "inf"}


@dataclass(frozen=True)
class ParsedOverrides:
    """Fixed overrides (passed to compose as they are) and sweep axes (key -> values)."""

    fixed: list[str]
    axes: dict[str, list[str]]


def parse_overrides(overrides: list[str]) -> ParsedOverrides:
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise ConfigError(f"invalid override syntax: {error}") from None

    fixed: list[str] = []
    axes: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            if override.is_delete():
                raise ConfigError(f"cannot sweep a deletion: '{override.input_line}'")
            # get_key_element keeps the + of an added key (+engine.args.new_flag=1,2), so
            # every point's override adds it too.
            axes[key] = _sweep_values(override)
        else:
            fixed.append(override.input_line)
    return ParsedOverrides(fixed=fixed, axes=axes)


def _sweep_values(override: Override) -> list[str]:
    """Expand a sweep override into its values as override text.

    glob() over a config group needs the group's options, which Hydra's parser only lists
    inside a multirun. They are the YAML files of that group's folder under conf/.
    """
    if override.value_type != ValueType.GLOB_CHOICE_SWEEP:
        return list(override.sweep_string_iterator())

    group = override.key_or_group
    folder = conf_dir() / group
    if not folder.is_dir():
        raise ConfigError(
            f"glob() sweeps config group options, but '{group}' is not a config group: "
            f"list the values instead, e.g. {group}=a,b"
        )
    options = sorted(path.stem for path in folder.glob("*.yaml"))
    values = override.value().filter(options)
    if not values:
        raise ConfigError(f"'{override.input_line}' matches no option of '{group}': {', '.join(options)}")
    return values


def override_key(override: str) -> str:
    """Return the key that an override sets, without +, ++ or ~ and without @package."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0]


def format_value(value: Any) -> str:
    """Format a config value as Hydra override text that parses back to the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if _BARE_STRING.match(value) and value.lower() not in _RESERVED:
            return value
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ",".join(f"{key}:{format_value(item)}" for key, item in value.items())
        return "{" + items + "}"
    raise ConfigError(f"cannot sweep over value {value!r} of type {type(value).__name__}")
