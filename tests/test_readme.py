"""The README's Python examples run as written."""
import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_tour_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    exec(compile("\n".join(blocks), str(README), "exec"), {})
    assert "val loss" in capsys.readouterr().out
