"""Compose the Hydra config from conf/ with the compose API, so harness owns its CLI.

Hydra's own errors are translated into ConfigError messages that name the key and list
the valid keys or options, because a sweep must fail before any job starts.
"""

import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from harness.config.schema import HarnessConfig
from harness.config.validate import validate_config
from harness.errors import ConfigError

SCHEMA_NAME = "harness_schema"
# Config groups that conf/config.yaml lists with a null default, so an override sets them
# without a leading + (Hydra rejects `+group@package=option` for a group already listed).
NULL_DEFAULT_GROUPS = (
    "parallelism@mode.prefill_parallelism",
    "parallelism@mode.decode_parallelism",
)


def conf_dir() -> Path:
    """Return the config folder: $HARNESS_CONF_DIR, else conf/ beside the package."""
    override = os.environ.get("HARNESS_CONF_DIR")
    path = Path(override) if override else repo_root() / "conf"
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"config folder {path} has no config.yaml; install harness from its source "
            "tree with `pip install -e .` or set HARNESS_CONF_DIR to a copy of conf/"
        )
    return path


def templates_dir() -> Path:
    """Return the engine template folder: $HARNESS_TEMPLATES_DIR, else templates/."""
    override = os.environ.get("HARNESS_TEMPLATES_DIR")
    return Path(override) if override else repo_root() / "templates"


@dataclass(frozen=True)
class ComposedConfig:
    """A composed config and the config group options that built it."""

    cfg: DictConfig
    choices: dict[str, str]

    @property
    def experiment(self) -> str:
        return self.choices.get("experiment") or "adhoc"


def repo_root() -> Path:
    """Return the folder that contains conf/, templates/ and scripts/ of this checkout."""
    return Path(__file__).resolve().parents[2]


def _register_schema() -> None:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=HarnessConfig)
    # ${harness_root:} lets configs name files of the checkout (a generated model, the
    # vLLM venv) by absolute path, because jobs do not run in the submitting folder.
    OmegaConf.register_new_resolver("harness_root", lambda: str(repo_root()), replace=True)


def compose_config(overrides: list[str]) -> ComposedConfig:
    """Compose conf/config.yaml with the overrides, then validate the result."""
    _register_schema()
    _reject_added_schema_keys(overrides)
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(explain_compose_error(error, overrides)) from None

    choices = {
        str(group): str(option)
        for group, option in cfg.hydra.runtime.choices.items()
        if option is not None and not str(group).startswith("hydra")
    }
    with open_dict(cfg):
        del cfg["hydra"]
    validate_config(cfg)
    return ComposedConfig(cfg=cfg, choices=choices)


def _reject_added_schema_keys(overrides: list[str]) -> None:
    """Reject `+key=value` where the schema declares every key of key's section.

    Hydra lets `+` add any key, but a key the schema does not declare is read by nothing,
    so it would only change the point id. Free-form mappings (engine.args, engine.env,
    cluster.sbatch_extra) and config groups (+experiment=...) may still be added to.
    """
    for override in overrides:
        if not override.startswith("+") or "=" not in override:
            continue
        group_key = override.split("=", 1)[0].lstrip("+")
        if group_key in NULL_DEFAULT_GROUPS:
            raise ConfigError(
                f"'{override}' adds a config group that conf/config.yaml already lists with a "
                f"null default: drop the leading +, e.g. {override.lstrip('+')}"
            )
        key = group_key.split("@", 1)[0]
        if (conf_dir() / key).is_dir():
            continue
        parent_path, _, leaf = key.rpartition(".")
        node: Any = HarnessConfig
        for part in parent_path.split(".") if parent_path else []:
            node = _schema_child(node, part)
        if is_dataclass(node) and leaf not in {item.name for item in fields(node)}:
            raise ConfigError(f"unknown config key '{key}' in '{override}'. {valid_keys_hint(key)}")


def load_point_config(path: Path | str) -> DictConfig:
    """Load a point's resolved config.yaml back onto the typed schema."""
    try:
        loaded = OmegaConf.load(path)
        cfg = OmegaConf.merge(OmegaConf.structured(HarnessConfig), loaded)
    except (OSError, OmegaConfBaseException) as error:
        raise ConfigError(f"cannot load point config {path}: {error}") from None
    OmegaConf.set_struct(cfg, True)
    return cfg


def explain_compose_error(error: Exception, overrides: list[str]) -> str:
    """Turn a Hydra or OmegaConf error into one message with the key and the valid keys."""
    text = _error_chain_text(error)
    missing = re.search(r"Could not find '([^']+)'", text)
    if missing is not None:
        group, _, option = missing.group(1).rpartition("/")
        options = re.findall(r"^\t(\S+)$", text, flags=re.MULTILINE)
        if group and options:
            return (
                f"unknown option '{option}' for config group '{group}': "
                f"choose one of {', '.join(sorted(options))}"
            )
        return f"config not found: '{missing.group(1)}'; check the name against conf/"

    match = re.search(r"full_key: ([\w.\-+]+)", text)
    if match is None:
        match = re.search(r"Could not (?:override|append to|delete from) '([\w.\-+]+)'", text)
    if match is None:
        return f"invalid config: {text.strip()}"

    full_key = match.group(1).lstrip("+~")
    first_line = text.strip().splitlines()[0]
    hint = valid_keys_hint(full_key)
    message = f"invalid config key or value '{full_key}': {first_line}"
    if "not in struct" in text or "Key '" in text and "not in" in text:
        message = f"unknown config key '{full_key}'"
    if "could not be converted" in text or "Invalid value" in text or "is not a valid" in text:
        message = f"invalid value for '{full_key}': {_last_meaningful_line(text)}"
        hint = ""
    return message + (f". {hint}" if hint else "")


def valid_keys_hint(full_key: str) -> str:
    """List the keys that the schema allows next to full_key, closest match first."""
    parent_path, _, leaf = full_key.rpartition(".")
    node: Any = HarnessConfig
    for part in parent_path.split(".") if parent_path else []:
        node = _schema_child(node, part)
        if node is None:
            return ""
    if not is_dataclass(node):
        # A free-form mapping such as engine.args: new keys need a leading +.
        return f"To add a new key under '{parent_path}', write +{full_key}=VALUE"

    valid = [f.name for f in fields(node)]
    close = difflib.get_close_matches(leaf, valid, n=1)
    suggestion = f"Did you mean '{close[0]}'? " if close else ""
    where = f"'{parent_path}'" if parent_path else "the top level"
    return f"{suggestion}Valid keys under {where}: {', '.join(valid)}"


def _schema_child(node: Any, name: str) -> Any:
    """Return the declared type of field `name` of a schema dataclass, Optional unwrapped."""
    if not is_dataclass(node):
        return None
    hints = typing.get_type_hints(node)
    if name not in hints:
        return None
    declared = hints[name]
    if typing.get_origin(declared) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(declared) if arg is not type(None)]
        declared = options[0] if len(options) == 1 else declared
    return declared


def _error_chain_text(error: BaseException) -> str:
    parts = []
    current: BaseException | None = error
    while current is not None:
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def _last_meaningful_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "could not be converted" in line or "Invalid value" in line or "is not a valid" in line:
            return line
    return lines[0] if lines else text
