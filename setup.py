"""Build the Cython kernels in kernels/*.pyx as extension modules of fastgrad._kernels.

First writes kernels/codes.pxi, the kernels' constants, from kernels/codes.py (by
kernels/_generate_codes.py, loaded by path: nothing of fastgrad is imported); the .pyx files
include it. Set FASTGRAD_BOUNDSCHECK=1 to build them with bounds and initialisation checks and
with every bundle's shapes checked against the layer table (a debug build the test suite also
runs against); the default build turns those checks off.
"""
import importlib.util
import os
import sysconfig
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

KERNELS = Path(__file__).resolve().parent / "kernels"


def load_generator():
    """kernels/_generate_codes.py as a module, loaded from its path."""
    spec = importlib.util.spec_from_file_location("_generate_codes", KERNELS / "_generate_codes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load_generator().write(KERNELS / "codes.py", KERNELS / "codes.pxi")

# the bounds-checked build: Cython's checks on memoryviews, and (the macro FASTGRAD_BOUNDSCHECK)
# every bundle's shapes checked against the layer table where the kernels unpack them
debug = os.environ.get("FASTGRAD_BOUNDSCHECK", "0") not in ("", "0")
# `pip install .` compiles on the machine that will run the kernels, so the default build uses
# its whole instruction set (AVX2, AVX-512 where present: wider vectors for the element-wise
# loops); FASTGRAD_PORTABLE=1 builds for any x86-64 (SSE2), for wheels that travel. Either way
# no FMA contraction, so that every operation rounds as the numpy and Numba twins' do; and
# -fno-math-errno, since the kernels never read errno: sqrt then vectorises (it still gives NaN
# for a negative argument, as IEEE 754 says).
portable = os.environ.get("FASTGRAD_PORTABLE", "0") not in ("", "0")
COMPILE_ARGS = ["-O3", "-ffp-contract=off", "-fno-math-errno"] + (
    [] if portable else ["-march=native"])
# GCC gives up vectorising a loop when proving its arrays apart would take more than 10 run-time
# checks: the optimizer updates read and write six rows of parameters and state at once
compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or ""
if "gcc" in compiler or "g++" in compiler:
    COMPILE_ARGS.append("--param=vect-max-version-for-alias-checks=40")
# cythonize and build_ext rebuild only what is older than its sources, and a change of mode or
# of compiler flags changes no source: so a build in another mode than the last one here
# regenerates every .c file (and hence every extension), which a stamp in build/ records
mode = ("boundscheck" if debug else "default") + " " + " ".join(COMPILE_ARGS)
stamp = KERNELS.parent / "build" / "fastgrad-kernels-mode"
force = not stamp.exists() or stamp.read_text(encoding="utf-8") != mode
directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": False,
    "initializedcheck": debug,
    "cdivision": True,
}
extensions = [
    Extension(
        f"fastgrad._kernels.{pyx.stem}",
        [f"kernels/{pyx.name}"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("FASTGRAD_BOUNDSCHECK", "1" if debug else "0")],
        extra_compile_args=COMPILE_ARGS,
    )
    for pyx in sorted(Path("kernels").glob("*.pyx"))
]
modules = cythonize(extensions, compiler_directives=directives, force=force)
stamp.parent.mkdir(exist_ok=True)
stamp.write_text(mode, encoding="utf-8")
# every package of the source tree, found (so that a new subpackage is never left out of the
# wheel), and the kernels, which live in kernels/ (pyproject.toml's package-dir)
packages = [*find_packages(include=["fastgrad", "fastgrad.*"]), "fastgrad._kernels"]
setup(ext_modules=modules, packages=packages)
