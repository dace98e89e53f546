"""``fastgrad bench`` (also ``python -m fastgrad.bench``): the speed targets of the parallel and
sequential approaches measured side by side in one process, on scikit-learn's digits.

- the parallel approach: one SGD step (forward, loss, backprop, update) of 64-32-10 at batch 64
  and of 64-256-10 on all 1,797 digits, float32, against PyTorch eager and ``jax.jit``, and the
  full-batch step's FLOP rate against the BLAS peak (a float32 numpy matrix product); a whole
  epoch of 64-32-10 in batches of 64 (one kernel call) against a PyTorch loop over the same
  batches and a ``jax.jit`` epoch (``lax.scan`` over the batches);
- the sequential approach: one cyclic sweep (float64, all digits) at about 2k, 20k and 50k
  weights and with two hidden layers, against one full-batch parallel step (fastgrad's and
  PyTorch's) and against the naive sweep (a full forward and backward pass per weight: one
  such step timed, times n_params);
- a whole training run as a user times it (``fastgrad.train``: Adam, 100 epochs of batches of
  200 on the 1,347 training digits, float64, each epoch's training loss and accuracy
  included) against scikit-learn's ``MLPClassifier`` and a PyTorch loop with the same
  settings;
- what the objectives cost where they are used: the minibatch step and the 20k sweep with the
  L2 penalty (alpha > 0), with sample weights and with both, against the same call without;
- fastgrad.sklearn's MLPClassifier and MLPRegressor against scikit-learn's, every parameter
  at its default (``random_state=0``): ``fit`` on the standardised training digits and on
  scikit-learn's diabetes set (features and target standardised, 75/25 split), with each
  estimator's test score (accuracy; R²);
- Numba against Cython throughout, and each backend's cold start (a fresh process: Numba with
  an empty cache, so compiling, then with the cache it left; Cython's first call).

Peers that are not installed are skipped, saying so. Times are the best of a few calls.
"""
import json
import tempfile

import numpy as np

from ..approaches import sweep
from ..datasets import load, load_digits_standardised
from ..model import MLP
from ..model.network import sizes_label
from ..optim import SGD
from .cases import (EPOCH_CASE, LR, NETWORKS, PARALLEL_CASES, TRAINING, best_time,
                           blas_peak, cold_start_seconds, fastgrad_epoch, fastgrad_training,
                           jax_epoch, jax_step, naive_sweep_step, sklearn_training, step_flops,
                           timed, torch_epoch, torch_step, torch_training)


# ---------------------------------------------------------------- measurements
def parallel(results, skipped):
    X64, y = load_digits_standardised()
    X = X64.astype(np.float32)
    for case, (size, batch) in PARALLEL_CASES.items():
        sizes = NETWORKS[size]
        Xb, yb = (X, y) if batch is None else (X[:batch], y[:batch])
        row = results.setdefault("parallel", {}).setdefault(case, {})
        for backend in ("numba", "cython"):
            net = MLP(sizes, dtype="float32", backend=backend)
            bound = SGD(LR).bind(net)
            row[backend] = timed(lambda: bound.step(Xb, yb))
        row["GFLOP/s"] = step_flops(sizes, len(Xb)) / min(row["numba"], row["cython"]) / 1e9
        for peer, make in (("pytorch", lambda: torch_step(sizes, Xb, yb)),
                           ("jax.jit", lambda: jax_step(MLP(sizes, dtype="float32"), Xb, yb))):
            call = make()
            if call is None:
                skipped.add(peer)
            else:
                row[peer] = timed(call)


def epoch(results, skipped):
    """EPOCH_CASE: one whole minibatch epoch (fastgrad: one kernel call) against a PyTorch loop
    over the same batches and a jax.jit epoch."""
    X, y = load_digits_standardised()
    X = X.astype(np.float32)
    batch_size = EPOCH_CASE[1]
    row = results.setdefault("epoch", {"samples": len(X)})
    for backend in ("numba", "cython"):
        row[backend] = timed(fastgrad_epoch(backend, X, y, batch_size), repeats=10)
    for peer, make in (("pytorch", torch_epoch), ("jax.jit", jax_epoch)):
        call = make(X, y, batch_size)
        if call is None:
            skipped.add(peer)
        else:
            row[peer] = timed(call, repeats=10)


def sequential(results, sizes):
    X, y = load_digits_standardised()
    for name in sizes:
        shape = NETWORKS[name]
        row = results.setdefault("sequential", {}).setdefault(name, {})
        net = MLP(shape, seed=0)
        row["n_params"] = net.n_params
        row["network"] = sizes_label(shape)
        for backend in ("numba", "cython"):
            twin = net.copy(backend)
            sweep(twin.copy(), X[:20], y[:20])  # warm: compiles
            row[f"sweep {backend}"] = best_time(lambda: sweep(twin.copy(), X, y, lr=0.1),
                                                repeats=2, budget=5.0)
            bound = SGD(0.1).bind(twin)
            row[f"step {backend}"] = timed(lambda: bound.step(X, y))
        call = torch_step(shape, X, y)
        if call is not None:
            row["step pytorch"] = timed(call)
        # the naive sweep: a full forward and backward pass before every single step
        row["naive sweep"] = timed(naive_sweep_step(net.copy(), X, y, 0.1),
                                   repeats=20) * net.n_params


# the objectives timed against the plain one (alpha 0, no weights): (alpha, sample weights)
OBJECTIVES = {"alpha": (1e-4, False), "weights": (0.0, True), "both": (1e-4, True)}


def objectives(results):
    """Each objective's time against the plain objective's, in each backend: the minibatch
    step (64-32-10 at batch 64, float32) and the cyclic sweep of 64-256-10 (float64, all
    digits), with the L2 penalty, with sample weights (uniform in [0.5, 1.5]) and with both."""
    X, y = load_digits_standardised()
    weight = np.random.default_rng(0).uniform(0.5, 1.5, len(X))
    X32, batch = X.astype(np.float32), PARALLEL_CASES["minibatch 64-32-10, batch 64"][1]
    rows = results.setdefault("objectives", {})
    for backend in ("numba", "cython"):
        for label, (alpha, weighted) in {"plain": (0.0, False), **OBJECTIVES}.items():
            w = weight if weighted else None
            net = MLP(NETWORKS["2k"], dtype="float32", backend=backend, alpha=alpha)
            bound = SGD(LR).bind(net)
            w_batch = None if w is None else w[:batch]
            rows.setdefault("minibatch step", {}).setdefault(backend, {})[label] = timed(
                lambda: bound.step(X32[:batch], y[:batch], sample_weight=w_batch))
            wide = MLP(NETWORKS["20k"], backend=backend, alpha=alpha)
            sweep(wide.copy(), X[:20], y[:20], sample_weight=None if w is None else w[:20])
            rows.setdefault("sweep 64-256-10", {}).setdefault(backend, {})[label] = best_time(
                lambda: sweep(wide.copy(), X, y, lr=0.1, sample_weight=w), repeats=2,
                budget=5.0)


def training(results, skipped):
    """The TRAINING case as a user runs it: fastgrad.train in each backend, scikit-learn's
    MLPClassifier and a PyTorch loop in the same dtype, each the best of two whole runs."""
    data = load("digits", seed=0)
    X, y = data.X_train, data.y_train
    row = results.setdefault("training", {})
    for backend in ("numba", "cython"):
        run = fastgrad_training(backend, X, y)
        run()  # warm: compiles
        row[backend] = best_time(run, repeats=2, budget=10.0)
    row["MLPClassifier"] = best_time(sklearn_training(X, y), repeats=2, budget=10.0)
    run = torch_training(X, y)
    if run is None:
        skipped.add("pytorch")
    else:
        row["pytorch"] = best_time(run, repeats=2, budget=10.0)


def estimators(results):
    """fit with the defaults, fastgrad.sklearn's estimators (each backend) against
    scikit-learn's, each the best of two fits, with the test score of the fitted estimator."""
    import warnings

    from sklearn import neural_network
    from sklearn.datasets import load_diabetes
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    from .. import sklearn as fastgrad_sklearn

    digits = load("digits", seed=0)
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    mean, std, y_mean, y_std = X_train.mean(0), X_train.std(0), y_train.mean(), y_train.std()
    diabetes = ((X_train - mean) / std, (X_test - mean) / std, (y_train - y_mean) / y_std,
                (y_test - y_mean) / y_std)
    cases = {"MLPClassifier, digits": ("MLPClassifier", (digits.X_train, digits.X_test,
                                                         digits.y_train, digits.y_test)),
             "MLPRegressor, diabetes": ("MLPRegressor", diabetes)}
    rows = results.setdefault("estimators", {})
    for case, (name, (X_train, X_test, y_train, y_test)) in cases.items():
        row = rows.setdefault(case, {})
        makers = {"scikit-learn": lambda: getattr(neural_network, name)(random_state=0)}
        for backend in ("numba", "cython"):
            makers[backend] = lambda backend=backend: getattr(fastgrad_sklearn, name)(
                random_state=0, backend=backend)
        for label, make in makers.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                make().set_params(max_iter=2).fit(X_train, y_train)  # warm: compiles
                row[label] = best_time(lambda: make().fit(X_train, y_train), repeats=2,
                                       budget=10.0)
                fitted = make().fit(X_train, y_train)
            row[f"{label} score"] = fitted.score(X_test, y_test)
            row[f"{label} epochs"] = fitted.n_iter_


def cold_start(results):
    """Each backend's cold start: Numba with an empty cache (compiling), then with the cache
    that run left; Cython."""
    row = results.setdefault("cold start", {})
    with tempfile.TemporaryDirectory() as cache:
        for label, backend in (("numba, empty cache", "numba"), ("numba, cached", "numba"),
                               ("cython", "cython")):
            row[label] = cold_start_seconds(backend, cache)


def measure(quick=False):
    results, skipped = {}, set()
    parallel(results, skipped)
    epoch(results, skipped)
    results["BLAS peak GFLOP/s"] = blas_peak(1024 if quick else 2048)
    sequential(results, ["2k", "20k"] if quick else list(NETWORKS))
    objectives(results)
    training(results, skipped)
    estimators(results)
    cold_start(results)
    results["skipped"] = sorted(skipped)
    return results


# ---------------------------------------------------------------- report
def ms(seconds):
    return f"{seconds * 1e3:10.3f} ms" if seconds < 1 else f"{seconds:10.2f} s "


def peer_row(case, row, suffix):
    """A parallel-approach row: each backend's and peer's time, and fastgrad's best against
    each peer."""
    best = min(row["numba"], row["cython"])
    peers = "  ".join(f"{peer} {row[peer] / best:.2f}x" for peer in ("pytorch", "jax.jit")
                      if peer in row)
    cells = "".join(f"{ms(row[k]) if k in row else '-':>14}"
                    for k in ("numba", "cython", "pytorch", "jax.jit"))
    return f"{case:<30}{cells}   {peers} faster{suffix}"


def report(results):
    lines = ["parallel approach: one SGD step, float32 (best of a few calls)",
             f"{'case':<30}{'numba':>14}{'cython':>14}{'pytorch':>14}{'jax.jit':>14}"
             f"   fastgrad's best vs peers"]
    for case, row in results["parallel"].items():
        lines.append(peer_row(case, row, f"; {row['GFLOP/s']:.0f} GFLOP/s"))
    row = results["epoch"]
    name, batch_size = EPOCH_CASE
    case = f"epoch {sizes_label(NETWORKS[name])}, batches of {batch_size}"
    lines.append(peer_row(case, row, f" (a whole epoch, {-(-row['samples'] // batch_size)} "
                                     f"steps)"))
    lines.append(f"BLAS peak (numpy float32 matrix product): "
                 f"{results['BLAS peak GFLOP/s']:.0f} GFLOP/s\n")
    lines += ["sequential approach: one cyclic sweep, float64, all 1,797 digits",
              f"{'network':<17}{'weights':>8}{'sweep numba':>14}{'sweep cython':>14}"
              f"{'fastgrad step':>15}{'pytorch step':>14}{'naive sweep':>14}"
              f"   sweep/step  sweep/pytorch step  naive/sweep"]
    for row in results["sequential"].values():
        sweep_time = min(row["sweep numba"], row["sweep cython"])
        step = min(row["step numba"], row["step cython"])
        torch_ratio = (f"{sweep_time / row['step pytorch']:19.0f}" if "step pytorch" in row
                       else f"{'-':>19}")
        lines.append(f"{row['network']:<17}{row['n_params']:>8}{ms(row['sweep numba']):>14}"
                     f"{ms(row['sweep cython']):>14}{ms(step):>15}"
                     f"{ms(row['step pytorch']) if 'step pytorch' in row else '-':>14}"
                     f"{ms(row['naive sweep']):>14}   {sweep_time / step:10.0f}"
                     f" {torch_ratio}  {row['naive sweep'] / sweep_time:10.0f}x")
    if "objectives" in results:
        lines += ["\nobjectives: each option's time over the plain objective's (alpha 0, no "
                  "weights)",
                  f"{'case':<30}{'backend':<8}{'plain':>14}" + "".join(
                      f"{label:>10}" for label in OBJECTIVES)]
        for case, by_backend in results["objectives"].items():
            for backend, row in by_backend.items():
                lines.append(f"{case:<30}{backend:<8}{ms(row['plain']):>14}" + "".join(
                    f"{row[label] / row['plain']:>9.2f}x" for label in OBJECTIVES))
    case = TRAINING
    lines += [f"\ntraining: Adam({case['lr']:g}), batches of {case['batch_size']}, "
              f"{case['epochs']} epochs of the 1,347 training digits, 64-{case['hidden']}-10 "
              f"{case['activation']}, float64, each epoch's training loss included",
              f"{'':<30}{'numba':>14}{'cython':>14}{'MLPClassifier':>15}{'pytorch loop':>14}"
              f"   fastgrad's best vs peers"]
    row = results["training"]
    best = min(row["numba"], row["cython"])
    peers = "  ".join(f"{peer} {row[peer] / best:.2f}x" for peer in ("MLPClassifier", "pytorch")
                      if peer in row)
    lines.append(f"{'fastgrad.train':<30}{ms(row['numba']):>14}{ms(row['cython']):>14}"
                 f"{ms(row['MLPClassifier']):>15}"
                 f"{ms(row['pytorch']) if 'pytorch' in row else '-':>14}   {peers} faster")
    if "estimators" in results:
        lines += ["\nestimators: fit with every parameter at its default (random_state=0), "
                  "best of two; the test score (accuracy, R²) and epochs of each",
                  f"{'case':<24}{'numba':>14}{'cython':>14}{'scikit-learn':>14}"
                  f"   scores (numba, cython, scikit-learn)   epochs   fastgrad's best vs "
                  f"scikit-learn"]
        for case, row in results["estimators"].items():
            best = min(row["numba"], row["cython"])
            scores = ", ".join(f"{row[f'{k} score']:.4f}" for k in ("numba", "cython",
                                                                     "scikit-learn"))
            epochs = "/".join(str(row[f"{k} epochs"]) for k in ("numba", "cython",
                                                                 "scikit-learn"))
            lines.append(f"{case:<24}{ms(row['numba']):>14}{ms(row['cython']):>14}"
                         f"{ms(row['scikit-learn']):>14}   {scores:<38}{epochs:>9}   "
                         f"{row['scikit-learn'] / best:.2f}x faster")
    lines.append("\ncold start (fresh process: import, first step, forward-mode gradient, sweep)")
    lines += [f"  {label:<20}{seconds:8.2f} s" for label, seconds in results["cold start"].items()]
    if results["skipped"]:
        lines.append(f"\nskipped (not installed): {', '.join(results['skipped'])}")
    return "\n".join(lines)


def plot(results, path):
    """Time per sweep and per full-batch epoch (one step) against the number of weights, on
    log-log axes, for both approaches and both backends (one-hidden-layer networks)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((row for row in results["sequential"].values()
                   if row["network"].count("-") == 2),
                  key=lambda row: row["n_params"])
    weights = [row["n_params"] for row in rows]
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    for key, style in (("sweep numba", "o-"), ("sweep cython", "s-"), ("step numba", "o--"),
                       ("step cython", "s--")):
        approach = "sequential sweep" if key.startswith("sweep") else "parallel epoch"
        axes.loglog(weights, [row[key] for row in rows], style,
                    label=f"{approach}, {key.split()[1]}")
    axes.loglog(weights, [row["naive sweep"] for row in rows], "k:", label="naive sweep")
    axes.set_xlabel("weights")
    axes.set_ylabel("seconds")
    axes.set_title("one sweep vs one full-batch epoch, float64, 1,797 digits")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def build_parser(parser):
    """Add ``fastgrad bench``'s options to ``parser`` (the CLI's subcommand parser)."""
    parser.add_argument("--quick", action="store_true",
                        help="smaller sweeps (2k and 20k weights) and BLAS product")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw time per sweep and per epoch against the number of weights")
    parser.set_defaults(run=run)
    return parser


def run(args):
    results = measure(args.quick)
    print(report(results))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)
    if args.plot:
        plot(results, args.plot)
