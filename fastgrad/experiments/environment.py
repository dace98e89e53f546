"""The versions and the machine an experiment ran on."""
import os
import platform

import numpy as np


def environment():
    """The versions and the machine (Numba's read from its package metadata, so that a Cython run
    need not import it)."""
    from importlib.metadata import version

    import sklearn

    from .. import __version__

    processor = platform.processor() or None
    try:  # Linux names the CPU model here; platform.processor() often gives ""
        with open("/proc/cpuinfo") as file:
            processor = next((line.split(":", 1)[1].strip() for line in file
                              if line.startswith("model name")), processor)
    except OSError:
        pass
    return {"fastgrad": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "numba": version("numba"), "scikit-learn":
            sklearn.__version__, "machine": platform.machine(), "processor": processor,
            "system": platform.platform(), "cpus": os.cpu_count()}
