"""Every kernel's results against the values recorded before the kernel interface and the Python
layer were reshaped (tests/kernel_values.py): bit-identical on the machine that recorded them,
equal to round-off on another CPU or BLAS (whose code paths sum in other orders)."""
import numpy as np
import pytest

from kernel_values import BACKENDS, PATH, compute, machine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded():
    with np.load(PATH, allow_pickle=False) as values:
        return {name: values[name] for name in values.files}


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_are_unchanged(recorded, backend):
    now = compute([backend])
    assert sorted(now) == sorted(name for name in recorded if name.split("/")[1:2] == [backend])
    same_machine = str(recorded["machine"]) == machine()
    for name, value in now.items():
        expected = recorded[name]
        assert value.shape == expected.shape, name
        if same_machine:
            assert np.array_equal(value, expected, equal_nan=True), \
                f"{name}: {np.sum(value != expected)} entries differ from the recorded value"
        else:
            tolerance = 1e-4 if "f32" in name else 1e-9
            np.testing.assert_allclose(value, expected, rtol=tolerance, atol=tolerance,
                                       err_msg=name)
