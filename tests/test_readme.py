"""The README's Python examples run as written."""
import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_tour_runs(capsys, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)  # the examples write files
    exec(compile("\n".join(blocks), str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert "val loss" in printed and "sweep-cyclic" in printed
    assert (tmp_path / "iris-compare" / "loss_vs_seconds.png").is_file()
