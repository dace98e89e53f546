"""Saving and loading: a network (``net.save(path)``, ``fastgrad.load(path)``) and a training
checkpoint (``fastgrad.save(path, net, approach=..., history=..., rng=...)``,
``load_checkpoint(path)``), in safetensors files (safetensors_file.py) whose tensors are named
as PyTorch names them (layout.py), so that ``torch.nn.Module.load_state_dict`` reads a
network's file directly. What is not a tensor — the architecture, the approach's options, the
History, the generator's state, the epoch — is JSON in the header's metadata; a checkpoint's
own tensors (the approach's state: an optimizer's moments and step counts) sit under the
``fastgrad.`` prefix. Nothing is pickled."""
import dataclasses
import json

import numpy as np

from .. import validation as check
from ..model import MLP
from . import safetensors_file
from .layout import check_tensors, put, tensors_of

PREFIX = "fastgrad.approach."
# the generators whose state is JSON-ready numbers (MT19937's holds an array)
GENERATORS = ("PCG64", "PCG64DXSM")


@dataclasses.dataclass
class Saved:
    """What a checkpoint holds: the network, the approach (with its state, bound to the network
    at its next run), the History so far, the generator's state (``rng``, a numpy Generator
    set to it, or None) and the number of epochs done."""

    net: MLP
    approach: object = None
    history: object = None
    rng: object = None
    epoch: int = 0


def _metadata(net, kind):
    from .. import __version__

    return {"format": safetensors_file.FORMAT,
            "format_version": str(safetensors_file.FORMAT_VERSION),
            "fastgrad_version": __version__, "kind": kind,
            "network": json.dumps(net.config())}


def save(path, net, approach=None, history=None, rng=None, epoch=None):
    """Write ``net`` to ``path`` (a safetensors file; atomic: an earlier file under that name
    stays whole if this fails, with an OSError). With any of ``approach``, ``history``, ``rng``
    or ``epoch`` it is a checkpoint: those too, for ``train(..., resume=path)``."""
    check.check_network(net)
    tensors = tensors_of(net)
    if approach is None and history is None and rng is None and epoch is None:
        safetensors_file.write(path, tensors, _metadata(net, "network"))
        return
    metadata = _metadata(net, "checkpoint")
    if approach is not None:
        from ..approaches import Approach

        if not isinstance(approach, Approach):
            raise TypeError(f"approach must be an approach object; got {approach!r}")
        metadata["approach"] = json.dumps(approach.config())
        tensors.update({PREFIX + name: array for name, array in approach.state_dict().items()})
    if history is not None:
        epoch = history.epochs if epoch is None else epoch
        _history(dataclasses.asdict(history), epoch)  # columns of one length: the epochs
        metadata["history"] = json.dumps(dataclasses.asdict(history))
    if rng is not None:
        if not isinstance(rng, np.random.Generator) or \
                rng.bit_generator.state["bit_generator"] not in GENERATORS:
            raise TypeError(f"rng must be a numpy.random.Generator of {GENERATORS} (numpy's "
                            f"default is PCG64); got {rng!r}")
        metadata["rng"] = json.dumps(rng.bit_generator.state)
    if epoch is not None:
        metadata["epoch"] = str(check.check_positive_int("epoch", epoch))
    safetensors_file.write(path, tensors, metadata)


def load(path):
    """The network saved in ``path`` (a network file or a checkpoint), its parameters, running
    statistics and count bit-identical to the saved ones, on the backend it was saved with
    (a checkpoint's other parts are not read)."""
    tensors, metadata = safetensors_file.read(path)
    return _network(path, {name: array for name, array in tensors.items()
                           if not name.startswith("fastgrad.")}, metadata)


def load_checkpoint(path):
    """A Saved: everything ``save`` wrote to ``path``, each part checked against the others
    and the network before it is returned (a ValueError naming the part that does not fit)."""
    tensors, metadata = safetensors_file.read(path)
    own = {name: tensors.pop(name) for name in list(tensors) if name.startswith("fastgrad.")}
    unknown = sorted(name for name in own if not name.startswith(PREFIX))
    if unknown:
        raise ValueError(f"{path} holds tensors fastgrad does not know: {unknown}")
    saved = Saved(_network(path, tensors, metadata))
    saved.epoch = _part(path, metadata, "epoch",
                        lambda n: check.check_positive_int("epoch", n)) or 0
    saved.history = _part(path, metadata, "history", lambda f: _history(f, saved.epoch))
    saved.rng = _part(path, metadata, "rng", _generator)
    saved.approach = _part(path, metadata, "approach", _approach)
    state = {name[len(PREFIX):]: array for name, array in own.items()}
    if saved.approach is not None:
        try:
            optimizer = getattr(saved.approach, "optimizer", None)
            if optimizer is not None:  # its state, checked against the network it was for
                optimizer.bind(saved.net).load_state_dict(state)
            saved.approach.load_state_dict(state)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}'s approach state is not valid: {error}") from None
    elif state:
        raise ValueError(f"{path} holds an approach's state but no approach")
    return saved


def _network(path, tensors, metadata):
    """The network of a file's tensors and metadata, checked before it is built."""
    config = _part(path, metadata, "network", _network_config, required=True)
    check_tensors(str(path), tensors, config["sizes"], config["batchnorm"],
                  check.check_dtype(config["dtype"]))
    net = _part(path, metadata, "network", MLP.from_config, required=True)
    try:
        put(net, tensors)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return net


def _part(path, metadata, key, build, required=False):
    """``build`` of the metadata's ``key`` (parsed from JSON), or None where absent; any
    failure a ValueError naming the file and the part."""
    if key not in metadata:
        if required:
            raise ValueError(f"{path} has no {key} in its metadata")
        return None
    try:
        return build(json.loads(metadata[key]))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError,
            RecursionError) as error:
        raise ValueError(f"{path}'s {key} is not valid: {error}") from None


def _network_config(config):
    if not isinstance(config, dict):
        raise TypeError("not a JSON object")
    check.check_sizes(config["sizes"])
    check.check_bool("batchnorm", config["batchnorm"])
    check.check_dtype(config["dtype"])
    return config


def _approach(config):
    from ..approaches import Approach

    return Approach.from_config(config)


def _history(fields, epochs):
    """A History from its fields, each column a list of one entry per epoch."""
    from ..training import History

    if not isinstance(fields, dict):
        raise TypeError("not a JSON object")
    fields.setdefault("running_loss", [None] * epochs)  # a file from before it was kept
    history = History(**fields)
    if history.best_epoch is not None:
        check.check_positive_int("best_epoch", history.best_epoch)
    columns = {name: value for name, value in vars(history).items()
               if name not in ("approach", "figures", "best_epoch")}
    columns.update({f"figures[{name!r}]": value for name, value in history.figures.items()})
    for name, column in columns.items():
        if not isinstance(column, list) or len(column) != epochs:
            raise ValueError(f"the History's {name} must be a list of {epochs} entries, one "
                             f"per epoch")
    return history


def _generator(state):
    kind = state["bit_generator"]
    if kind not in GENERATORS:
        raise ValueError(f"unknown bit generator {kind!r}")
    generator = np.random.Generator(getattr(np.random, kind)())
    generator.bit_generator.state = state
    return generator
