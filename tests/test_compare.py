"""fastgrad compare, the main job: the library function, its files, and the command line end to
end with a tiny budget, including every error a user can make."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import fastgrad
from fastgrad import cli
from fastgrad import experiments

FILES = ("loss_vs_epoch.png", "loss_vs_seconds.png", "accuracy.png", "history.csv",
         "results.json")


def read_history(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_the_command_runs_end_to_end_and_writes_files_that_parse(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "fastgrad", "compare", "--dataset", "iris", "--epochs", "2",
         "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    for name in experiments.CONTENDERS:
        assert name in done.stdout
    assert "Traceback" not in done.stderr
    # stderr is not a terminal here: plain lines, one per approach, no bar
    assert sum(line.split()[0] in experiments.CONTENDERS
               for line in done.stderr.splitlines() if line.strip()) == len(experiments.CONTENDERS)
    assert sorted(path.name for path in out.iterdir()) == sorted([*FILES, "networks"])
    assert sorted(path.name for path in (out / "networks").iterdir()) == sorted(
        f"{name}.safetensors" for name in experiments.CONTENDERS)
    for name in FILES[:3]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_history(out / "history.csv")
    assert len(rows) == 2 * len(experiments.CONTENDERS)
    assert {row["approach"] for row in rows} == set(experiments.CONTENDERS)
    assert all(float(row["train_seconds"]) > 0 and float(row["train_loss"]) > 0 for row in rows)
    results = json.loads((out / "results.json").read_text())
    assert [row["approach"] for row in results["table"]] == list(experiments.CONTENDERS)
    assert results["dataset"]["name"] == "iris" and results["dataset"]["n_test"] == 38
    assert results["environment"]["numba"] and results["settings"]["epochs"] == 2


def test_every_approach_starts_from_the_same_weights_and_the_table_matches_the_histories():
    result = fastgrad.compare("wine", epochs=3, approaches=["gd", "layerwise", "sweep-newton"])
    first = {run.name: run.history.loss[0] for run in result.runs}
    # one step of full-batch GD and of the first layer alone from the same start differ, but
    # both start below the untrained loss, which every run shares
    untrained = fastgrad.MLP([13, 32, 3], seed=0)
    data = fastgrad.datasets.load("wine", seed=0)
    start = untrained.loss(data.X_train, data.y_train)
    assert result.initial_loss == start
    assert all(loss < start for loss in first.values())
    for run, row in zip(result.runs, result.table()):
        assert row["epochs"] == 3 == run.history.epochs
        assert row["train_loss"] == run.history.loss[-1]
        assert row["steps"] == sum(run.history.steps)
        assert row["train_seconds"] == pytest.approx(sum(run.history.train_seconds))
    assert result.table()[0]["steps"] == 3  # full-batch GD: one step an epoch
    assert result.table()[1]["steps"] == 6  # two layers, one step each, an epoch
    assert result.table()[2]["steps"] == 3 * untrained.n_params
    assert result.table()[2]["flipped"] is not None and result.table()[0]["flipped"] is None


def test_the_same_seed_gives_the_same_weights_whatever_approaches_run_alongside():
    alone = fastgrad.compare("iris", epochs=2, approaches=["adam"])
    together = fastgrad.compare("iris", epochs=2, approaches=["gd", "adam"])
    assert alone.runs[0].history.loss == together.runs[1].history.loss


def test_a_seconds_budget_stops_every_approach_after_the_epoch_that_reaches_it():
    result = fastgrad.compare("iris", seconds=0.05, approaches=["gd", "sweep-cyclic"])
    for run in result.runs:
        times = run.history.train_seconds
        assert sum(times) >= 0.05 and sum(times[:-1]) < 0.05


def test_epochs_and_seconds_stop_at_whichever_comes_first():
    result = fastgrad.compare("iris", epochs=2, seconds=1000.0, approaches=["gd"])
    assert result.runs[0].history.epochs == 2


def test_a_diverging_approach_is_reported_and_the_others_go_on(monkeypatch):
    monkeypatch.setitem(experiments.CONTENDERS, "huge-step", experiments.Contender(
        "huge-step", "gradient descent with a step far too large",
        {"type": "Parallel", "optimizer": {"type": "SGD", "lr": 1e300}}))
    result = fastgrad.compare("iris", epochs=5, approaches=["huge-step", "gd"], activation="relu")
    bad, good = result.runs
    assert bad.diverged and "not finite" in bad.diverged and bad.history.epochs < 5
    assert good.diverged is None and good.history.epochs == 5
    assert "DIVERGED" in result.format_table().splitlines()[1]


def test_regression_on_a_users_csv_with_a_named_target(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    path = tmp_path / "measurements.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["a", "label", "b", "c"])
        for row, value in zip(X, X @ [1.0, -2.0, 0.5]):
            writer.writerow([row[0], value, row[1], row[2]])
    result = fastgrad.compare(str(path), target="label", task="regression", epochs=2,
                              approaches=["gd", "sweep-cyclic"])
    assert result.dataset["n_features"] == 3 and result.network["loss"] == "mse"
    assert all(row["train_accuracy"] is None for row in result.table())
    paths = result.save(tmp_path / "out")
    assert len(paths) == 5 + 2  # and the two networks


def test_weighted_multilabel_and_poisson_comparisons_from_the_command_line(tmp_path, capsys):
    rng = np.random.default_rng(2)
    path = tmp_path / "visits.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["x1", "x2", "weight", "rain", "sun", "visits"])
        for r in range(80):
            x1, x2 = rng.normal(size=2)
            writer.writerow([x1, x2, rng.uniform(0.5, 2), int(x1 > 0), int(x2 > 0),
                             rng.poisson(np.exp(0.5 * x1))])
    for task, target, loss in (("multilabel", "rain,sun", "binary_cross_entropy"),
                               ("poisson", "visits", "poisson")):
        out = tmp_path / task
        code = cli.main(["compare", "--dataset", str(path), "--target", target, "--task", task,
                         "--weight", "weight", "--alpha", "1e-3", "--epochs", "2",
                         "--approaches", "adam", "sweep-newton", "--quiet", "--out", str(out)])
        printed = capsys.readouterr()
        assert code == 0, printed.err
        results = json.loads((out / "results.json").read_text())
        assert results["network"]["loss"] == loss and results["network"]["alpha"] == 1e-3
        assert results["settings"]["weight"] == "weight"
        net = fastgrad.load(out / "networks" / "adam.safetensors")
        assert (net.loss_name, net.alpha) == (loss, 1e-3)
        data = fastgrad.datasets.load(path, target=target, task=task, weight="weight")
        test_loss = net.loss(data.X_test, data.y_test, sample_weight=data.w_test)
        row = next(row for row in results["table"] if row["approach"] == "adam")
        assert row["test_loss"] == pytest.approx(test_loss, rel=1e-12)


def test_the_cli_reads_a_csv_written_here(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = tmp_path / "points.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["x1", "x2", "label"])
        for r in range(80):
            x1, x2 = rng.normal(size=2)
            writer.writerow([x1, x2, int(x1 + x2 > 0)])
    code = cli.main(["compare", "--dataset", str(path), "--target", "label", "--epochs", "1",
                     "--approaches", "gd", "sweep-cyclic", "--quiet",
                     "--out", str(tmp_path / "out")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.err == ""  # --quiet
    assert "points.csv" in printed.out and "60 training and 20 test samples" in printed.out
    assert len(read_history(tmp_path / "out" / "history.csv")) == 2


def write_bad_files(tmp_path):
    (tmp_path / "words.csv").write_text("a,b,label\n1,2,0\n3,x,1\n")
    (tmp_path / "ok.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    np.savez(tmp_path / "noy.npz", X=np.zeros((4, 2)))
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")


ERRORS = [
    (["--dataset", "mnist"], "dataset must be one of"),
    (["--dataset", "{tmp}/missing.csv"], "does not exist"),
    (["--dataset", "{tmp}/words.csv"], "is not a number"),
    (["--dataset", "{tmp}/ok.csv", "--target", "colour"], "has no column 'colour'"),
    (["--dataset", "{tmp}/noy.npz"], "must hold arrays 'X' and 'y'"),
    (["--dataset", "{tmp}/broken.npz"], "cannot read"),
    (["--epochs", "0"], "expected a positive integer"),
    (["--epochs", "many"], "expected a positive integer"),
    (["--seconds", "-1"], "expected a positive number"),
    (["--seconds", "nan"], "expected a positive number"),
    (["--lr", "0"], "expected a positive number"),
    (["--approaches", "gd", "rprop"], "invalid choice: 'rprop'"),
    (["--alpha", "-1"], "expected a number >= 0"),
    (["--task", "ranking"], "invalid choice: 'ranking'"),
    (["--weight", "w"], "weight applies to a .csv or .npz file"),
    (["--dataset", "{tmp}/ok.csv", "--weight", "w"], "has no column 'w'"),
]


@pytest.mark.parametrize("arguments, message", ERRORS)
def test_each_user_error_is_one_line_and_exit_code_2(tmp_path, capsys, arguments, message):
    write_bad_files(tmp_path)
    arguments = [a.format(tmp=tmp_path) for a in arguments]
    try:
        code = cli.main(["compare", *arguments, "--quiet", "--out", str(tmp_path / "out")])
    except SystemExit as exit:  # argparse's own checks
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_an_error_from_the_installed_command_has_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fastgrad", "compare", "--dataset",
                           "nothing.csv"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == "fastgrad: error: dataset file 'nothing.csv' does not exist"


def test_the_library_checks_its_arguments_before_any_work():
    for kwargs, message in (({"epochs": 0}, "epochs must be at least 1"),
                            ({"seconds": float("inf")}, "seconds must be a finite positive number"),
                            ({"lr": -1.0}, "lr must be a finite positive number"),
                            ({"approaches": ["gd", "gd"]}, "must not repeat"),
                            ({"approaches": []}, "at least one approach"),
                            ({"progress": "loud"}, "progress must be")):
        with pytest.raises(ValueError, match=message):
            fastgrad.compare("iris", **kwargs)


def test_one_run_is_a_function_of_data_that_another_process_can_call():
    """A grid's cell: (dataset, network config, approach config, seeds) pickles to a fresh
    process (spawned: nothing inherited), whose Run's rows equal a run here; the three seeds
    act apart."""
    import concurrent.futures
    import multiprocessing

    data = fastgrad.datasets.load("iris", seed=3)
    network = fastgrad.MLP([4, 8, 3]).config()
    approach = experiments.CONTENDERS["sgd-momentum"].approach_config(0.05, len(data.X_train))
    seeds = experiments.Seeds(split=3, init=1, shuffle=2)
    here = experiments.train_one(data, network, approach, seeds, epochs=3, name="sgd")
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        there = pool.submit(experiments.train_one, data, network, approach, seeds, epochs=3,
                            name="sgd").result(timeout=300)
    for mine, theirs in zip(here.history_rows(), there.history_rows()):
        assert {k: v for k, v in mine.items() if "seconds" not in k} == \
            {k: v for k, v in theirs.items() if "seconds" not in k}
    other_init = experiments.train_one(data, network, approach,
                                       experiments.Seeds(split=3, init=2, shuffle=2), epochs=3)
    other_shuffle = experiments.train_one(data, network, approach,
                                          experiments.Seeds(split=3, init=1, shuffle=5), epochs=3)
    assert other_init.history.loss != here.history.loss
    assert other_shuffle.history.loss != here.history.loss
    assert other_init.history.loss[0] != other_shuffle.history.loss[0]
    with pytest.raises(TypeError, match="seeds.init"):
        experiments.Seeds(init=1.5)


def test_the_contenders_are_configs_and_the_results_name_them():
    import json

    result = fastgrad.compare("iris", epochs=1, approaches=["adam", "sweep-newton"])
    approaches = result.settings["approaches"]
    assert approaches["adam"]["config"]["optimizer"] == {
        "type": "Adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0.0,
        "correct_eps": False}
    assert approaches["sweep-newton"]["config"]["step"] == "newton"
    json.dumps(result.settings)  # JSON-ready
    assert result.network["label"].startswith("4-32-3 tanh, float64")
    assert result.settings["seed"] == {"split": 0, "init": 0, "shuffle": 0}
    for contender in experiments.CONTENDERS.values():
        config = contender.approach_config(0.5, 10)
        rebuilt = fastgrad.Approach.from_config(config)
        assert rebuilt.get_params()[contender.lr_option] == 0.5
        assert (rebuilt.get_params().get("batch_size") or 0) <= 10


def test_a_run_refuses_data_split_with_another_seed_and_cells_have_stable_keys():
    data = fastgrad.datasets.load("iris", seed=3)
    network = fastgrad.MLP([4, 8, 3]).config()
    approach = experiments.CONTENDERS["gd"].approach_config(2.0, len(data.X_train))
    with pytest.raises(ValueError, match="split with seed 3"):
        experiments.train_one(data, network, approach, experiments.Seeds(split=0), epochs=1)
    key = experiments.cell_key(network, approach, experiments.Seeds(3, 1, 2), epochs=3)
    assert key == experiments.cell_key(dict(reversed(network.items())), approach,
                                       experiments.Seeds(3, 1, 2), epochs=3)
    assert key != experiments.cell_key(network, approach, experiments.Seeds(3, 1, 3), epochs=3)
    assert len({hash(c) for c in experiments.CONTENDERS.values()}) == len(experiments.CONTENDERS)


def test_compare_checks_the_network_before_reading_any_data():
    for kwargs, match in (({"activation": "swish"}, "activation"), ({"dtype": "int8"}, "dtype"),
                          ({"backend": "jax"}, "backend"), ({"batchnorm": "yes"}, "batchnorm"),
                          ({"hidden": (0,)}, "positive")):
        with pytest.raises((ValueError, TypeError), match=match):
            fastgrad.compare("no-such-file.csv", **kwargs)


def test_the_saved_networks_predict_the_tables_test_accuracy(tmp_path):
    """fastgrad compare's networks/NAME.safetensors: the winner, loaded in a fresh network,
    predicts the test set as the table says."""
    result = fastgrad.compare("wine", epochs=3, approaches=["adam", "sweep-newton"])
    result.save(tmp_path)
    data = fastgrad.datasets.load("wine", seed=0)
    for row in result.table():
        net = fastgrad.load(tmp_path / "networks" / f"{row['approach']}.safetensors")
        accuracy = float(np.mean(net.predict(data.X_test) == data.y_test))
        assert accuracy == row["test_accuracy"], row["approach"]
