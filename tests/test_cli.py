"""The command line: the gradients demonstration and its error handling."""
import re
import subprocess
import sys

from fastgrad.cli import main


def test_gradients_demonstration_prints_agreement(capsys):
    assert main(["gradients", "--samples", "80", "--hidden", "8", "6", "--batchnorm"]) == 0
    out = capsys.readouterr().out
    assert "64-8-6-10 tanh + BatchNorm network" in out
    rows = re.findall(r"^(backprop|forward|finite_difference)\s+(\w+)\s+[\d.]+ ms\s+(\S+)$", out,
                      re.MULTILINE)
    assert len(rows) == 9
    for method, _, error in rows:
        assert float(error) < (1e-6 if method == "finite_difference" else 1e-10)


def test_bad_arguments_give_one_line_and_a_non_zero_exit(tmp_path):
    # run outside the checkout, so that the installed package is the one imported
    result = subprocess.run([sys.executable, "-m", "fastgrad", "gradients", "--samples", "-3"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("fastgrad gradients: error: argument --samples")
