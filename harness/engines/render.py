"""Render a worker's argv from its engine template.

A template writes one argument per line; lines are stripped and empty lines dropped, so
no shell ever parses the result and a value with spaces stays one argument. A value that
contains a line break cannot be rendered this way and is rejected.
"""

import sys
from dataclasses import dataclass
from typing import Any

import jinja2
from omegaconf import DictConfig, OmegaConf

from harness.config.compose import templates_dir
from harness.errors import ConfigError
from harness.launch.topology import Worker


@dataclass(frozen=True)
class WorkerCommand:
    worker: Worker
    argv: list[str]
    env: dict[str, str]
    host: str
    port: int | str

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def render_flags(args: dict[str, Any], style: str = "dash") -> list[str]:
    """Render engine flags: `name: value` -> `--name value`.

    True renders a bare flag, false and null omit it, a list repeats the values after
    one flag (`--name a b`), as argparse's nargs expects. With style "dash" the
    underscores of a name become dashes (SGLang, vLLM); "underscore" keeps them.
    """
    argv: list[str] = []
    for name, value in args.items():
        flag = "--" + (name.replace("_", "-") if style == "dash" else name)
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv.append(flag)
            argv.extend(_scalar_text(name, item) for item in value)
        else:
            argv.extend([flag, _scalar_text(name, value)])
    return argv


def _scalar_text(name: str, value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        raise ConfigError(f"engine.args.{name}: nested value {value!r} cannot be a flag value")
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if "\n" in text or "\r" in text:
        raise ConfigError(f"engine.args.{name}: value {value!r} contains a line break")
    return text


def render_worker(cfg: DictConfig, worker: Worker, host: str, port: int | str) -> WorkerCommand:
    """Render the argv and environment that start one worker of a point."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    try:
        template = environment.get_template(cfg.engine.template)
    except jinja2.TemplateNotFound:
        raise ConfigError(
            f"engine.template={cfg.engine.template!r} not found in {templates_dir()}"
        ) from None

    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    context = {
        **container,
        "worker": {"role": worker.role.value, "index": worker.index, "gpus": worker.gpus},
        "host": host,
        "port": port,
        "python": sys.executable,
        "flags": render_flags(container["engine"]["args"]),
    }
    try:
        text = template.render(**context)
    except jinja2.TemplateError as error:
        raise ConfigError(f"template {cfg.engine.template} failed to render: {error}") from None

    argv = [line.strip() for line in text.splitlines() if line.strip()]
    env = {str(key): str(value) for key, value in container["engine"]["env"].items()}
    return WorkerCommand(worker=worker, argv=argv, env=env, host=host, port=port)
