"""A network's tensors named as the ``state_dict`` of the ``torch.nn.Sequential`` that
``net.to_torch()`` builds: for each hidden layer a ``Linear`` (``i.weight`` of shape (out, in),
``i.bias``), with BatchNorm a ``BatchNorm1d`` (``i.weight`` = gamma, ``i.bias`` = beta,
``i.running_mean``, ``i.running_var``, ``i.num_batches_tracked``), then the activation (no
tensors); the last layer a ``Linear``. One table, read by the files and by the PyTorch interop.
"""
import numpy as np

from .._kernels.codes import COL_OFF, N_OUT
from ..model.network import Dense


def layout(sizes, batchnorm):
    """[(name, layer, kind, shape)] in the Sequential's order; ``kind`` is one of "W", "b",
    "gamma", "beta", "running_mean", "running_var", "num_batches_tracked"; ``shape`` the
    tensor's (PyTorch's: a Linear's weight is (out, in))."""
    entries, index, n_layers = [], 0, len(sizes) - 1
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        entries += [(f"{index}.weight", l, "W", (n_out, n_in)), (f"{index}.bias", l, "b", (n_out,))]
        index += 1
        if l == n_layers - 1:
            break
        if batchnorm:
            entries += [(f"{index}.weight", l, "gamma", (n_out,)),
                        (f"{index}.bias", l, "beta", (n_out,)),
                        (f"{index}.running_mean", l, "running_mean", (n_out,)),
                        (f"{index}.running_var", l, "running_var", (n_out,)),
                        (f"{index}.num_batches_tracked", l, "num_batches_tracked", ())]
            index += 1
        index += 1  # the activation
    return entries


def tensors_of(net):
    """{name: array} of the network, copies, C-contiguous (a Linear's weight is W transposed)."""
    tensors = {}
    for name, l, kind, _ in layout(net.sizes, net.batchnorm):
        layer = net.layers[l]
        if kind == "W":
            tensors[name] = np.ascontiguousarray(layer.W.T)
        elif kind == "num_batches_tracked":
            tensors[name] = net.state_dict()["num_batches_tracked"]
        else:
            tensors[name] = getattr(layer, kind).copy()
    return tensors


def check_tensors(where, tensors, sizes, batchnorm, dtype):
    """Every tensor's name, shape and dtype against the architecture (the names of
    ``layout``; the network's dtype, int64 for the counts): a ValueError naming the first
    mismatch."""
    expected = {name: shape for name, _, _, shape in layout(sizes, batchnorm)}
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{where} does not hold this network's tensors: missing {missing}, "
                         f"unexpected {unexpected}")
    for name, shape in expected.items():
        array = tensors[name]
        want = np.int64 if name.endswith("num_batches_tracked") else dtype
        if tuple(array.shape) != shape or array.dtype != want:
            raise ValueError(f"{where}: tensor {name!r} is {array.dtype}{list(array.shape)}; "
                             f"this network's is {np.dtype(want)}{list(shape)}")


def put(net, tensors):
    """Write checked tensors into the network through ``net.load_state_dict`` (so that NaN,
    inf or a negative variance is refused and nothing changes): the parameters, the running
    statistics and the count (one for the network: the largest of its BatchNorm layers')."""
    state = net.state_dict()  # copies, assembled through layer views of their own
    layers = [Dense(state["params"], row, state["running_mean"][columns],
                    state["running_var"][columns])
              for row, columns in ((row, slice(row[COL_OFF], row[COL_OFF] + row[N_OUT]))
                                   for row in net.table)]
    tracked = [0]
    for name, l, kind, _ in layout(net.sizes, net.batchnorm):
        layer = layers[l]
        if kind == "W":
            layer.W[:] = tensors[name].T
        elif kind == "num_batches_tracked":
            tracked.append(int(tensors[name]))
        else:
            getattr(layer, kind)[:] = tensors[name]
    state["num_batches_tracked"] = np.array(max(tracked), dtype=np.int64)
    net.load_state_dict(state)
