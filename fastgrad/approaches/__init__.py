"""The training approaches, one file each: ``Parallel`` (every weight at once, fastgrad/
approaches/parallel.py), ``LayerWise`` (one layer at a time, layerwise.py), ``Sequential``
(one weight at a time, sequential.py, with ``sweep``) and ``LBFGS`` (full-batch quasi-Newton,
lbfgs.py), on the interface of base.py."""
from .base import Approach, EpochResult, TrainingData
from .layerwise import LayerWise
from .lbfgs import LBFGS
from .parallel import Parallel
from .sequential import Sequential, SweepReport, sweep

APPROACHES = {approach.name: approach for approach in (Parallel, LayerWise, Sequential, LBFGS)}


def make_approach(approach):
    """An approach object from an object, a config (a dict with its ``"type"``) or a name (the
    named approach with its defaults)."""
    if isinstance(approach, Approach):
        return approach
    if isinstance(approach, dict):
        return Approach.from_config(approach)
    if isinstance(approach, str) and approach in APPROACHES:
        return APPROACHES[approach]()
    raise (ValueError if isinstance(approach, str) else TypeError)(
        f"approach must be an approach object (Parallel, LayerWise, Sequential, LBFGS, ...), its "
        f"config or one of {sorted(APPROACHES)}; got {approach!r}")


__all__ = ["Approach", "EpochResult", "TrainingData", "Parallel", "LayerWise", "Sequential", "LBFGS",
           "SweepReport", "sweep", "APPROACHES", "make_approach"]
