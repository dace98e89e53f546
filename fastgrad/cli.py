"""The ``fastgrad`` command line.

``fastgrad compare`` (the main job) trains the parallel and the sequential approaches side by
side on real data and writes a table, pictures and the histories (see fastgrad.compare).
``fastgrad bench`` times the parallel and sequential approaches against their peers (see
fastgrad.bench). ``fastgrad gradients`` computes dJ/dθ of an MLP on scikit-learn's digits (1,797 8x8 images,
standardised) three ways — backprop, forward mode, finite differences — in every backend, and
prints how far each is from the numpy reference's backprop gradient and how long it took.
"""
import argparse
import functools
import sys

import numpy as np

from . import datasets, experiments
from ._kernels.codes import ACTIVATIONS
from .bench import report as bench
from .bench.cases import best_time
from .datasets import load_digits_standardised
from .model import GRADIENT_METHODS, MLP, default_eps
from .model.backends import BACKENDS


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def compare(args):
    result = experiments.compare(
        args.dataset, target=args.target, task=args.task, weight=args.weight,
        hidden=args.hidden, activation=args.activation, batchnorm=args.batchnorm,
        alpha=args.alpha, dtype=args.dtype,
        backend=args.backend, seed=args.seed, approaches=args.approaches, lr=args.lr,
        epochs=args.epochs, seconds=args.seconds, progress="quiet" if args.quiet else "auto")
    data, network = result.dataset, result.network
    print(f"{data['name']} ({data['task']}): {data['n_train']} training and {data['n_test']} "
          f"test samples, {data['n_features']} features; network {network['label']}; "
          f"{network['backend']} backend")
    print(result.format_table())
    eval_seconds = sum(run.eval_seconds for run in result.runs)
    print(f"\ntrain s: training time only. The evaluation after each epoch (and the parallel "
          f"approaches'\nre-evaluation of each batch's loss, which counts raised steps) took "
          f"{eval_seconds:.2f} s in all, not counted.\nraised: steps that raised the loss of "
          f"their own batch. flipped: the fraction of a sweep's steps whose\nderivative had the "
          f"opposite sign from the gradient at the start of the sweep.")
    paths = result.save(args.out)
    files = [path.name for path in paths if path.parent.name != "networks"]
    print(f"\nwrote {', '.join(files)} in {args.out},\nand each approach's trained network "
          f"in {args.out}/networks/NAME.safetensors (for fastgrad.load)")


def gradients(args):
    X, y = load_digits_standardised(args.samples)
    sizes = [X.shape[1], *args.hidden, 10]
    reference = MLP(sizes, args.activation, args.batchnorm, dtype=args.dtype, seed=args.seed,
                    backend="numpy", alpha=args.alpha)
    penalty = f" + L2 penalty alpha {args.alpha:g}" if args.alpha else ""
    print(f"{reference.label} network, cross-entropy{penalty}, {args.dtype}, {len(X)} digits, "
          f"{reference.n_params} parameters")
    point = reference.point(X, y)
    exact = point.gradient("backprop")
    print(f"J = {point.loss:.12f}; |dJ/dθ|max = {np.abs(exact).max():.3e}; "
          f"finite-difference step {default_eps(reference.dtype):.2e}\n")
    print(f"{'method':<19}{'backend':<9}{'time':>11}   max |g - g_ref| / max |g_ref|")
    for method in GRADIENT_METHODS:
        for backend in args.backends:
            point = reference.copy(backend).point(X, y)
            gradient = point.gradient(method)  # (compiles a Numba kernel the first time)
            elapsed = best_time(functools.partial(point.gradient, method))
            error = np.abs(gradient - exact).max() / np.abs(exact).max()
            print(f"{method:<19}{backend:<9}{elapsed * 1e3:>8.2f} ms   {error:.1e}")
    print("\ng_ref: backprop in the numpy backend. backprop and forward mode agree to round-off;"
          "\nfinite differences to O(eps²) truncation plus round-off.")


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (and exit code 2) rather than the usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = Parser(prog="fastgrad", description="Train multilayer perceptrons the parallel "
                    "way and the sequential way; `fastgrad compare` is the main job.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    build_compare_parser(commands)
    grad = commands.add_parser(
        "gradients", help="the three gradient methods in every backend, side by side",
        description="Compare backprop, forward mode and finite differences on digits.")
    add_network_arguments(grad)
    grad.add_argument("--samples", type=positive_int, default=None,
                      help="use the first N digits (default: all 1,797)")
    grad.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    grad.add_argument("--seed", type=int, default=0)
    grad.set_defaults(run=gradients)
    bench.build_parser(commands.add_parser(
        "bench", help="the parallel and sequential speed targets side by side with peers",
        description=bench.__doc__.split("\n\n")[0]))
    return parser


def add_network_arguments(parser):
    """The network's options, the same for every command that builds one."""
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[32],
                        help="hidden layer widths (default: 32)")
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="tanh")
    parser.add_argument("--batchnorm", action="store_true", help="BatchNorm after hidden layers")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--alpha", type=non_negative_float, default=0.0,
                        help="L2 penalty on the weights, scikit-learn's alpha: J gains "
                             "alpha / (2 n) times the sum of the squared weights (default 0)")


def build_compare_parser(commands):
    approaches = "\n".join(f"  {c.name:<18} {c.description} (lr {c.lr:g})"
                           for c in experiments.CONTENDERS.values())
    cmp = commands.add_parser(
        "compare", help="the main job: the parallel and sequential approaches side by side",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the parallel and the sequential approaches on the same data from "
                    "the same initial weights;\nprint a table and write pictures, history.csv, "
                    "results.json and the trained networks.",
        epilog=f"approaches (default: all, each with its own learning rate):\n{approaches}\n\n"
               f"Time is training time: the per-epoch evaluation is timed apart.")
    cmp.add_argument("--dataset", default="digits",
                     help="digits (default), breast_cancer, iris, wine, or a path to a .csv "
                          "(numeric columns) or .npz (arrays X and y)")
    cmp.add_argument("--target", default=None,
                     help="the label column of a .csv (default: the last; several, separated "
                          "by commas, for multilabel or several regression targets)")
    cmp.add_argument("--task", choices=list(datasets.TASKS), default="classification",
                     help="classification (cross-entropy; default), regression (mse), "
                          "multilabel (binary cross-entropy per label; a built-in dataset's "
                          "classes as one-vs-rest labels) or poisson (counts; a built-in "
                          "dataset's class numbers as the counts)")
    cmp.add_argument("--weight", default=None, metavar="NAME",
                     help="the sample-weight column of a .csv (or array of an .npz): the loss "
                          "and the reported figures are weighted means")
    add_network_arguments(cmp)
    cmp.add_argument("--backend", choices=BACKENDS, default="cython",
                     help="cython (default: compiled when the package was installed), numba "
                          "(compiled on its first run, in tens of seconds, then loaded from its "
                          "cache) or numpy (the readable reference, slow)")
    cmp.add_argument("--seed", type=int, default=0,
                     help="seeds the split, the initial weights and the shuffling (default 0)")
    cmp.add_argument("--approaches", nargs="+", choices=list(experiments.CONTENDERS),
                     default=None, metavar="NAME", help="a subset of the approaches below")
    cmp.add_argument("--lr", type=positive_float, default=None,
                     help="one learning rate for every approach (default: each its own)")
    cmp.add_argument("--epochs", type=positive_int, default=None,
                     help=f"epochs per approach (default {experiments.DEFAULT_EPOCHS}, or no "
                          f"limit with --seconds alone)")
    cmp.add_argument("--seconds", type=positive_float, default=None,
                     help="training seconds per approach, the same for each (checked after "
                          "every epoch); with --epochs, whichever comes first")
    cmp.add_argument("--out", default="fastgrad-compare",
                     help="directory for the pictures, history.csv, results.json and "
                          "networks/NAME.safetensors (default ./fastgrad-compare)")
    cmp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    cmp.set_defaults(run=compare)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, ImportError, OSError) as error:
        print(f"fastgrad: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
