"""Every kernel's results against the values recorded before the kernel interface and the Python
layer were reshaped (tests/kernel_values.py): bit-identical on the machine that recorded them,
equal to round-off on another CPU or BLAS (whose code paths sum in other orders). Re-recorded
when the arithmetic changes on purpose (the vectorised float64 exp, tanh and sigmoid, within
round-off of the recording before them but for counts of decisions on round-off; the Cython
L2 penalty's sum in eight running sums, within 2e-16 of the one sum before; Adam's √v times
the reciprocal of its bias correction, within round-off but for the biases before BatchNorm,
whose gradients are round-off), and when cases are added (the objectives' options: the
earlier values stayed bit-identical)."""
import numpy as np
import pytest

from helpers import relative_error
from kernel_values import BACKENDS, NETWORKS, OBJECTIVES, PATH, compute, machine, problem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded():
    with np.load(PATH, allow_pickle=False) as values:
        return {name: values[name] for name in values.files}


def round_off_driven(name):
    """The parameters of the recorded network ``name`` (its first path element) whose gradient
    is zero in exact arithmetic: the biases of the layers BatchNorm follows."""
    spec = next(spec for spec in NETWORKS + OBJECTIVES if spec[0] == name.split("/")[0])
    net = problem(spec, "numpy")[0]
    mask = np.zeros(net.n_params, dtype=bool)
    if net.batchnorm:
        for l in range(len(net.layers) - 1):
            mask[[net.index(l, "b", i) for i in range(net.sizes[l + 1])]] = True
    return mask


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_are_unchanged(recorded, backend):
    now = compute([backend])
    assert sorted(now) == sorted(name for name in recorded if name.split("/")[1:2] == [backend])
    # Numba's bounds checking (NUMBA_BOUNDSCHECK=1, the CI's checked run) changes the code it
    # generates, and with it the order of its fastmath sums: compared as on another CPU
    import numba.core.config

    same_machine = str(recorded["machine"]) == machine() and not (
        backend == "numba" and numba.core.config.BOUNDSCHECK)
    for name, value in now.items():
        expected = recorded[name]
        assert value.shape == expected.shape, name
        if same_machine:
            assert np.array_equal(value, expected, equal_nan=True), \
                f"{name}: {np.sum(value != expected)} entries differ from the recorded value"
        else:
            if name.endswith(("/report", "/history")):
                # the counts of raised and flipped steps (the last two entries) count decisions
                # that round-off can tip on another CPU (the sign of a derivative that is zero
                # but for round-off): compared are the losses and step counts
                value, expected = value[:3], expected[:3]
            if value.shape[-1:] == (round_off_driven(name).size,):
                # a bias before BatchNorm has a zero gradient but for round-off, whose sign an
                # optimizer that normalises the step (Adam, RMSprop) turns into whole steps:
                # those parameters follow the round-off of the machine
                value, expected = (v[..., ~round_off_driven(name)] for v in (value, expected))
            assert np.array_equal(np.isnan(value), np.isnan(expected)), name
            known = ~np.isnan(expected)
            # relative to the array's scale: an entry that is round-off (a BatchNorm'd bias's
            # momentum) differs by round-off of the array's scale, not of its own
            assert relative_error(value[known], expected[known]) <= (
                1e-4 if "f32" in name else 1e-9), name
