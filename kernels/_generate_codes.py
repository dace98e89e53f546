"""Write ``codes.pxi``, the Cython kernels' copy of codes.py, from codes.py itself: setup.py
runs it before cythonize (so the constants are never copied by hand), and tests/test_codes.py
checks the generated file against it. It reads codes.py by executing it in an empty namespace
(codes.py imports nothing) and never imports fastgrad, so that it runs before the package is
built.

Each integer becomes a ``cdef enum`` member, each float a ``cdef double``, each tuple of
floats a ``cdef double[n]``; the dicts and strings codes.py holds for the Python layer are
left out. ``CODES`` at the end of the generated file is every generated constant as a Python
dict built from the compiled values, so that a test can compare what reached a compiled module
with codes.py.
"""
import math
from pathlib import Path

CODES_PY = Path(__file__).with_name("codes.py")
CODES_PXI = Path(__file__).with_name("codes.pxi")

HEADER = """\
# GENERATED from kernels/codes.py by kernels/_generate_codes.py (setup.py runs it at every
# build): DO NOT EDIT; change codes.py instead. Included by every Cython kernel.
"""


def constants(source):
    """(name, value) for every constant the Cython kernels take from the text of codes.py, in
    the order codes.py assigns them: integers, floats and tuples of floats."""
    namespace = {}
    exec(compile(source, str(CODES_PY), "exec"), namespace)
    found = []
    for name, value in namespace.items():
        if name.startswith("__") or isinstance(value, (dict, str)):
            continue
        if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            continue  # names for messages (KIND_NAMES)
        if isinstance(value, bool) or not (
                isinstance(value, (int, float))
                or isinstance(value, tuple) and value and all(type(v) is float for v in value)):
            raise TypeError(f"codes.py: {name} = {value!r} is neither an integer, a float nor a "
                            "tuple of floats (or a dict or strings, which are left out)")
        for v in value if isinstance(value, tuple) else (value,):
            if not math.isfinite(v):
                raise ValueError(f"codes.py: {name} = {value!r} is not finite")
        found.append((name, value))
    return found


def codes_pxi(source):
    """The text of codes.pxi for the text of codes.py."""
    lines = [HEADER]
    names = []
    for name, value in constants(source):
        if isinstance(value, int):
            lines.append(f"cdef enum:\n    {name} = {value}")
        elif isinstance(value, float):
            lines.append(f"cdef double {name} = {value!r}")
        else:
            lines.append(f"cdef double[{len(value)}] {name} = [{', '.join(map(repr, value))}]")
        names.append(f"{name}=tuple({name})" if isinstance(value, tuple) else f"{name}={name}")
    lines.append("")
    lines.append("# every constant above as compiled, for tests/test_codes.py")
    lines.append("CODES = dict(")
    lines.extend(f"    {entry}," for entry in names)
    lines.append(")")
    return "\n".join(lines) + "\n"


def write(codes_py=CODES_PY, codes_pxi_path=CODES_PXI):
    """Write codes.pxi from codes.py, only when its text changes (an unchanged file keeps its
    time stamp, so cythonize does not rebuild every kernel). Returns whether it wrote."""
    text = codes_pxi(Path(codes_py).read_text(encoding="utf-8"))
    path = Path(codes_pxi_path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


if __name__ == "__main__":
    print(f"{CODES_PXI} {'written' if write() else 'up to date'}")
