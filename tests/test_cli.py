"""The command line: the gradients demonstration and its error handling."""
import re
import subprocess
import sys

import pytest

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


def test_bench_reports_ratios_says_what_it_skipped_and_plots(tmp_path):
    from fastgrad.bench import report as bench

    results = {
        "parallel": {"minibatch": {"numba": 3e-5, "cython": 2e-5, "pytorch": 2e-4,
                                   "GFLOP/s": 20.0}},
        "epoch": {"samples": 1797, "numba": 1e-3, "cython": 8e-4, "pytorch": 4e-3},
        "BLAS peak GFLOP/s": 290.0,
        "sequential": {name: {"network": "64-n-10", "n_params": n, "sweep numba": n * 2e-5,
                              "sweep cython": n * 3e-5, "step numba": n * 5e-7,
                              "step cython": n * 6e-7, "naive sweep": n * n * 5e-7}
                       for name, n in (("2k", 2410), ("20k", 19210))},
        "objectives": {"sweep 64-256-10": {"cython": {"plain": 0.2, "alpha": 0.21,
                                                      "weights": 0.22, "both": 0.25}}},
        "training": {"numba": 0.5, "cython": 0.4, "MLPClassifier": 0.6, "pytorch": 1.2},
        "cold start": {"numba, empty cache": 30.0, "cython": 0.7},
        "skipped": ["jax.jit"],
    }
    text = bench.report(results)
    assert "pytorch 10.00x" in text  # 2e-4 / 2e-5
    assert "pytorch 5.00x faster (a whole epoch, 29 steps)" in text  # 4e-3 / 8e-4
    assert "MLPClassifier 1.50x  pytorch 3.00x faster" in text  # 0.6 / 0.4, 1.2 / 0.4
    assert "skipped (not installed): jax.jit" in text
    assert "1.05x     1.10x     1.25x" in text  # each objective over the plain one
    assert "2410" in text and "19210" in text
    bench.plot(results, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_rejects_unknown_options(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["bench", "--fast"])
    assert exit.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_asv_suites_own_cases_match_fastgrads():
    """benchmarks/cases.py keeps a copy of the cases for asv, which runs one suite against
    commits from before and after an API change; the copy must not drift from
    fastgrad/bench/cases.py, which fastgrad bench uses."""
    import importlib.util
    import inspect
    from pathlib import Path

    from fastgrad.bench import cases as ours

    spec = importlib.util.spec_from_file_location(
        "asv_cases", Path(__file__).parents[1] / "benchmarks" / "cases.py")
    theirs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(theirs)
    assert theirs.NETWORKS == ours.NETWORKS
    assert inspect.getsource(theirs.cold_start_seconds) == inspect.getsource(
        ours.cold_start_seconds)
    code = inspect.getsource(theirs.naive_sweep_step)
    assert code.split('"""')[2] == inspect.getsource(ours.naive_sweep_step).split('"""')[2]
    # the cold start does the same work in either spelling of the optimizer's step
    assert theirs.COLD_START.replace(
        'optimizer = fastgrad.optim.SGD(0.1)\noptimizer.bind(net).step(X, y) if hasattr('
        'optimizer, "bind") else optimizer.step(net, X, y)',
        'fastgrad.optim.SGD(0.1).bind(net).step(X, y)') == ours.COLD_START
