"""Values derived from a composed config that several parts need."""

from omegaconf import DictConfig


def effective_lengths(cfg: DictConfig) -> tuple[int, int]:
    """Return (ISL, OSL) of a point: the mode's value where set, else the workload's."""
    isl = cfg.mode.isl if cfg.mode.isl is not None else cfg.workload.isl
    osl = cfg.mode.osl if cfg.mode.osl is not None else cfg.workload.osl
    return isl, osl


def role_parallelism(cfg: DictConfig, role: str) -> DictConfig:
    """Return the parallelism of one worker of a role (aggregated, prefill or decode).

    A prefill or decode worker takes mode.prefill_parallelism or mode.decode_parallelism
    where set, else `parallelism`, which every aggregated worker uses.
    """
    if role in ("prefill", "decode"):
        own = cfg.mode[f"{role}_parallelism"]
        if own is not None:
            return own
    return cfg.parallelism
