"""The installed wheel holds every module of the source tree: setup.py finds the packages, so a
new subpackage of fastgrad/ cannot be left out silently."""
import json
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def installed_files():
    """The files the RECORD of the fastgrad distribution installed beside the imported package
    lists (the wheel's contents), or None when fastgrad is imported from the source tree (an
    editable install)."""
    import fastgrad

    site = Path(fastgrad.__file__).resolve().parents[1]
    if site == ROOT.resolve():
        return None
    [distribution] = [d for d in metadata.distributions(path=[str(site)])
                      if d.metadata["Name"] == "fastgrad"]
    direct_url = distribution.read_text("direct_url.json")
    if direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"):
        return None
    return {str(path).replace("\\", "/") for path in distribution.files}


def source_modules():
    """Every file the wheel must hold, as its path in site-packages: the Python modules of
    fastgrad/ and of kernels/ (installed as fastgrad/_kernels/) and the kernels' .pyx sources."""
    modules = {f"fastgrad/{path.relative_to(ROOT / 'fastgrad').as_posix()}"
               for path in (ROOT / "fastgrad").rglob("*.py")}
    modules |= {f"fastgrad/_kernels/{path.name}" for path in (ROOT / "kernels").glob("*.py")}
    modules |= {f"fastgrad/_kernels/{path.name}" for path in (ROOT / "kernels").glob("*.pyx")}
    return modules


def test_every_subpackage_is_a_package():
    """Each folder of fastgrad/ holding modules has an __init__.py, so that it is found."""
    for folder in (ROOT / "fastgrad").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), folder


def test_the_installed_wheel_holds_every_module_of_the_source_tree():
    files = installed_files()
    if files is None:
        pytest.skip("an editable install: its RECORD lists no modules (CI installs a wheel)")
    missing = sorted(source_modules() - files)
    assert not missing, f"modules of the source tree missing from the wheel: {missing}"
    for pyx in (ROOT / "kernels").glob("*.pyx"):  # and each kernel compiled
        assert any(name.startswith(f"fastgrad/_kernels/{pyx.stem}.") and
                   name.endswith((".so", ".pyd")) for name in files), pyx.stem
