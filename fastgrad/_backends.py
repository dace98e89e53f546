"""The three kernel backends, loaded on first use (importing Numba costs about a second)."""
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
