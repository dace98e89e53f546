"""Networks to and from PyTorch (an optional dependency: imported only here, only when called).

``to_torch(net)`` builds the ``torch.nn.Sequential`` fastgrad's network is — ``Linear``,
``BatchNorm1d`` (eps 1e-5, momentum 0.1, as fastgrad's), the activation, ..., ``Linear`` — with
its parameters, running statistics and count; ``from_torch(module)`` reads such a module back,
refusing anything fastgrad does not compute the same way, naming the first offending layer.
Both go through the tensor names of layout.py, the names fastgrad's files use."""

from .. import validation as check
from .._kernels.codes import BN_EPS, BN_MOMENTUM, LOSSES
from ..model import MLP
from ..model.network import OUTPUT_REDUCTIONS
from ..model.backends import BACKENDS
from .layout import check_tensors, put, tensors_of

# fastgrad's activation -> the name of the torch.nn module that computes it
ACTIVATION_MODULES = {"tanh": "Tanh", "relu": "ReLU", "sigmoid": "Sigmoid", "identity": "Identity"}


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("PyTorch interop needs torch (pip install torch==2.13.0 for the CPU "
                          "build)") from None
    return torch


def to_torch(net):
    """The network as a ``torch.nn.Sequential`` in its dtype, training mode, with every
    parameter, running statistic and count bit-identical."""
    torch = _torch()
    check.check_network(net)
    dtype = getattr(torch, net.dtype.name)
    modules, n_layers = [], len(net.layers)
    for l, layer in enumerate(net.layers):
        modules.append(torch.nn.Linear(layer.n_in, layer.n_out, dtype=dtype))
        if l == n_layers - 1:
            break
        if net.batchnorm:
            modules.append(torch.nn.BatchNorm1d(layer.n_out, eps=BN_EPS, momentum=BN_MOMENTUM,
                                                dtype=dtype))
        modules.append(getattr(torch.nn, ACTIVATION_MODULES[net.activation])())
    module = torch.nn.Sequential(*modules)
    module.load_state_dict({name: torch.from_numpy(array)
                            for name, array in tensors_of(net).items()}, strict=True)
    return module


def from_torch(module, loss="cross_entropy", backend="cython", *, output_reduction="mean",
               alpha=0.0):
    """A fastgrad network from a ``torch.nn.Sequential`` of ``Linear`` (with bias),
    optionally ``BatchNorm1d`` (affine, tracking running statistics, eps 1e-5, momentum 0.1)
    after every hidden ``Linear``, and one kind of activation (``Tanh``, ``ReLU``,
    ``Sigmoid``, ``Identity``), ending with a ``Linear``, all float32 or all float64. The
    parameters, running statistics and count are copied bit for bit. ``loss``, ``backend``,
    ``output_reduction`` and ``alpha`` as for MLP (the module does not say them)."""
    torch = _torch()
    check.check_choice("loss", loss, LOSSES)
    check.check_choice("backend", backend, BACKENDS)
    check.check_choice("output_reduction", output_reduction, OUTPUT_REDUCTIONS)
    check.check_non_negative("alpha", alpha)
    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(f"module must be a torch.nn.Sequential; got {type(module).__name__}")
    layers = list(module)
    activations = {name: kind for kind, name in ACTIVATION_MODULES.items()}
    sizes, batchnorm, activation, dtype = [], None, None, None

    def refuse(index, layer, why):
        raise ValueError(f"module layer {index} ({type(layer).__name__}): {why}")

    index = 0
    while index < len(layers):
        layer = layers[index]
        if not isinstance(layer, torch.nn.Linear):
            refuse(index, layer, "expected a Linear here (fastgrad's layers are Linear, "
                                 "[BatchNorm1d], activation, ..., Linear)")
        if layer.bias is None:
            refuse(index, layer, "a Linear without bias")
        if dtype is None:
            dtype = layer.weight.dtype
            if dtype not in (torch.float32, torch.float64):
                refuse(index, layer, f"dtype {dtype}; fastgrad computes in float32 or float64")
        for tensor in (layer.weight, layer.bias):
            if tensor.dtype != dtype:
                refuse(index, layer, f"dtype {tensor.dtype}, after layers of {dtype}")
        if sizes and layer.in_features != sizes[-1]:
            refuse(index, layer, f"{layer.in_features} inputs after a layer of {sizes[-1]} "
                                 f"outputs")
        sizes += [layer.in_features] if not sizes else []
        sizes.append(layer.out_features)
        index += 1
        if index == len(layers):
            break
        layer = layers[index]
        has_bn = isinstance(layer, torch.nn.BatchNorm1d)
        if batchnorm is not None and has_bn != batchnorm:
            refuse(index, layer, "BatchNorm after some hidden layers but not others")
        batchnorm = has_bn
        if has_bn:
            if not layer.affine or not layer.track_running_stats:
                refuse(index, layer, "a BatchNorm1d without affine parameters or running "
                                     "statistics")
            if layer.eps != BN_EPS or layer.momentum != BN_MOMENTUM:
                refuse(index, layer, f"eps {layer.eps} and momentum {layer.momentum}; fastgrad's "
                                     f"BatchNorm has eps {BN_EPS} and momentum {BN_MOMENTUM}")
            if layer.num_features != sizes[-1]:
                refuse(index, layer, f"{layer.num_features} features after a layer of "
                                     f"{sizes[-1]} outputs")
            for tensor in (layer.weight, layer.bias, layer.running_mean, layer.running_var):
                if tensor.dtype != dtype:
                    refuse(index, layer, f"dtype {tensor.dtype}, after layers of {dtype}")
            index += 1
            if index == len(layers):
                refuse(index - 1, layer, "the module ends with BatchNorm; it must end with a "
                                         "Linear")
            layer = layers[index]
        kind = activations.get(type(layer).__name__)
        if kind is None or type(layer) is not getattr(torch.nn, type(layer).__name__, None):
            refuse(index, layer, f"not one of the supported activations "
                                 f"{sorted(activations)}")
        if activation is not None and kind != activation:
            refuse(index, layer, f"{type(layer).__name__} after layers activated by "
                                 f"{ACTIVATION_MODULES[activation]}; fastgrad uses one "
                                 f"activation")
        activation = kind
        index += 1
        if index == len(layers):
            refuse(index - 1, layer, "the module ends with an activation; it must end with a "
                                     "Linear")
    if not sizes:
        raise ValueError("module is empty; it needs at least one Linear")
    net = MLP(sizes, activation or "identity", bool(batchnorm), loss,
              str(dtype).replace("torch.", ""), 0, backend, output_reduction=output_reduction,
              alpha=alpha)
    tensors = {name: tensor.detach().cpu().numpy().copy()
               for name, tensor in module.state_dict().items()}
    check_tensors("module", tensors, net.sizes, net.batchnorm, net.dtype)
    put(net, tensors)
    return net
