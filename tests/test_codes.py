"""The Cython kernels' constants are generated from kernels/codes.py, never copied by hand:
setup.py writes kernels/codes.pxi with kernels/_generate_codes.py at every build. Here the
generated file is regenerated and compared with the one the build used, and every constant of
codes.py is checked to have reached each compiled Cython module, with its value."""
import importlib
import importlib.util
from pathlib import Path

import pytest

import fastgrad._kernels
from fastgrad._kernels import codes

PACKAGE = Path(fastgrad._kernels.__file__).parent
REPOSITORY_KERNELS = Path(__file__).resolve().parents[1] / "kernels"
CYTHON_MODULES = ("mlp_cython", "incremental_cython", "parallel_cython", "sequential_cython")


def load_generator():
    """kernels/_generate_codes.py, loaded by path (the way setup.py loads it)."""
    path = PACKAGE / "_generate_codes.py"
    spec = importlib.util.spec_from_file_location("_generate_codes_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator():
    return load_generator()


@pytest.fixture(scope="module")
def source():
    return (PACKAGE / "codes.py").read_text(encoding="utf-8")


def test_the_generated_file_is_the_one_the_build_used(generator, source):
    """codes.pxi beside the installed package (an editable or in-place build) or in the
    repository's kernels/ (which setup.py writes when it builds from there)."""
    shipped = [p for p in (PACKAGE / "codes.pxi", REPOSITORY_KERNELS / "codes.pxi") if p.exists()]
    if not shipped:
        pytest.skip("no codes.pxi beside the installed package nor in the repository")
    text = shipped[0].read_text(encoding="utf-8")
    assert text == generator.codes_pxi(source), \
        f"{shipped[0]} is stale: rebuild (python setup.py build_ext --inplace); never edit it"
    assert "DO NOT EDIT" in text.splitlines()[0] + text.splitlines()[1]


def test_the_generator_reads_every_constant_of_codes_py(generator, source):
    """Every integer, float and tuple of floats in codes.py, with the value the numpy and Numba
    kernels import; the dicts and strings are the Python layer's and are left out."""
    generated = dict(generator.constants(source))
    for name, value in vars(codes).items():
        if name.startswith("_") or isinstance(value, (dict, str)) or (
                isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            assert name not in generated, name
            continue
        assert generated[name] == value and type(generated[name]) is type(value), name
    assert set(generated) <= set(vars(codes))
    for name in ("N_IN", "COL_OFF", "OFF_W", "LR", "SGD_MOMENTUM", "OK", "NONFINITE_STEP",
                 "PICK_GREEDILY", "TANH_SINGLE_P", "BN_EPS"):
        assert name in generated, name


@pytest.mark.parametrize("module_name", CYTHON_MODULES)
def test_every_constant_reached_the_compiled_module(generator, source, module_name):
    """Each module's CODES (generated from the same source) holds every constant of codes.py
    as the compiler saw it: the enum members' integers, the doubles and the double arrays."""
    module = importlib.import_module(f"fastgrad._kernels.{module_name}")
    expected = dict(generator.constants(source))
    assert module.CODES == expected
    for name, value in module.CODES.items():
        assert type(value) is type(expected[name]), name


def test_the_generator_writes_enums_doubles_and_arrays(generator):
    text = generator.codes_pxi("A, B = 0, -1\nX = 1.0 / 32\nP = (1.0, 0.5)\n"
                               "NAMES = {'a': 0}\nKINDS = ('W', 'b')\nLABEL = 'x'\n")
    assert "cdef enum:\n    A = 0\n" in text and "cdef enum:\n    B = -1\n" in text
    assert "cdef double X = 0.03125\n" in text
    assert "cdef double[2] P = [1.0, 0.5]\n" in text
    assert "NAMES" not in text and "KINDS" not in text and "LABEL" not in text
    assert "P=tuple(P)," in text and "A=A," in text


@pytest.mark.parametrize("line", ["X = [1, 2]", "X = None", "X = (1, 2.0)", "X = float('inf')",
                                  "X = True"])
def test_the_generator_refuses_what_it_cannot_write(generator, line):
    with pytest.raises((TypeError, ValueError)):
        generator.codes_pxi(line + "\n")


def test_write_keeps_an_unchanged_file(generator, tmp_path):
    codes_py, pxi = tmp_path / "codes.py", tmp_path / "codes.pxi"
    codes_py.write_text("A = 1\n")
    assert generator.write(codes_py, pxi)
    assert not generator.write(codes_py, pxi)
    codes_py.write_text("A = 2\n")
    assert generator.write(codes_py, pxi)
    assert "A = 2" in pxi.read_text()
