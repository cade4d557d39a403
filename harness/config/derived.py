"""Values derived from a composed config that several parts need."""

from omegaconf import DictConfig


def effective_lengths(cfg: DictConfig) -> tuple[int, int]:
    """Return (ISL, OSL) of a point: the mode's value where set, else the workload's."""
    isl = cfg.mode.isl if cfg.mode.isl is not None else cfg.workload.isl
    osl = cfg.mode.osl if cfg.mode.osl is not None else cfg.workload.osl
    return isl, osl
