"""The three kernel backends, loaded on first use (importing Numba takes a while), and how
their entry points take the bundles."""
import importlib
from types import SimpleNamespace

BACKENDS = ("numba", "cython", "numpy")
_loaded = {}


def kernels(backend):
    """The backend's ``mlp``, ``incremental``, ``parallel`` and ``sequential`` kernel modules
    (same functions, same arguments: docs/design.md, "The kernel interface")."""
    if backend not in _loaded:
        _loaded[backend] = SimpleNamespace(
            mlp=importlib.import_module(f"fastgrad._kernels.mlp_{backend}"),
            incremental=importlib.import_module(f"fastgrad._kernels.incremental_{backend}"),
            parallel=importlib.import_module(f"fastgrad._kernels.parallel_{backend}"),
            sequential=importlib.import_module(f"fastgrad._kernels.sequential_{backend}"),
        )
    return _loaded[backend]


def bundle_type(backend, bundle):
    """What builds the bundle (a namedtuple class of fastgrad._kernels.bundles) for backend's
    kernels from a tuple of its fields: ``bundle._make``, or for Numba ``tuple``, which keeps the
    plain tuple. Numba's entry points take either, but its dispatcher types a plain tuple of
    arrays in C and a namedtuple in Python, at a cost per field (docs/design.md, "The
    kernel interface")."""
    return tuple if backend == "numba" else bundle._make
