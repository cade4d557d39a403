"""Render an args mapping (flag name -> value) as command-line flags in an engine's style.

True renders a bare flag, false and null omit it, a mapping becomes one compact JSON
argument (vLLM's --kv-transfer-config, SGLang's --json-model-override-args), and a list
follows the engine's list style. Every value must fit on one line, because templates
write one argument per line.
"""

import json
from collections.abc import Mapping
from typing import Any

from harness.config.schema import FlagStyle, ListStyle
from harness.errors import ConfigError


def flag_name(name: str, style: FlagStyle | str = FlagStyle.dash) -> str:
    """Return the flag of an args key: `--chunked-prefill-size` or `--max_batch_size`."""
    if FlagStyle(style) == FlagStyle.dash:
        return "--" + name.replace("_", "-")
    return "--" + name


def render_flags(
    args: Mapping[str, Any],
    style: FlagStyle | str = FlagStyle.dash,
    list_style: ListStyle | str = ListStyle.nargs,
    where: str = "engine.args",
) -> list[str]:
    """Render flags: `name: value` -> `--name value`, in the order of args.

    A list follows list_style: nargs gives `--name a b` (argparse nargs), repeat gives
    `--name a --name b` (argparse append), comma gives `--name a,b`. where names the
    config section in error messages.
    """
    list_style = ListStyle(list_style)
    argv: list[str] = []
    for name, value in args.items():
        flag = flag_name(str(name), style)
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            items = [value_text(f"{where}.{name}", item) for item in value]
            if list_style == ListStyle.nargs:
                argv.append(flag)
                argv.extend(items)
            elif list_style == ListStyle.repeat:
                for item in items:
                    argv.extend([flag, item])
            else:
                argv.extend([flag, ",".join(items)])
        else:
            argv.extend([flag, value_text(f"{where}.{name}", value)])
    return argv


def value_text(key: str, value: Any) -> str:
    """Return one argument's text: booleans in lower case, mappings as compact JSON."""
    if isinstance(value, Mapping):
        text = json.dumps(to_plain(value), separators=(",", ":"))
    elif isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: nested list {value!r} cannot be a flag value")
    elif isinstance(value, bool):
        text = str(value).lower()
    else:
        text = str(value)
    if "\n" in text or "\r" in text:
        raise ConfigError(f"{key}: value {value!r} contains a line break")
    return text


def to_plain(value: Any) -> Any:
    """Convert nested mappings and sequences (OmegaConf nodes included) to dict and list."""
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    return value
