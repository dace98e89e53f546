"""Build the Cython kernels in kernels/*.pyx as extension modules of fastgrad._kernels.

Set FASTGRAD_BOUNDSCHECK=1 to build them with bounds and initialisation checks (a debug build
the test suite also runs against); the default build turns those checks off.
"""
import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FASTGRAD_BOUNDSCHECK", "0") not in ("", "0")
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
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for pyx in sorted(Path("kernels").glob("*.pyx"))
]
setup(ext_modules=cythonize(extensions, compiler_directives=directives))
