"""Configuration: the structured schema, Hydra composition and validation."""

from harness.config.compose import ComposedConfig, compose_config, conf_dir, load_point_config

__all__ = ["ComposedConfig", "compose_config", "conf_dir", "load_point_config"]
