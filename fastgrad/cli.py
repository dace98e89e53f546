"""The ``fastgrad`` command line.

``fastgrad bench`` times the parallel and sequential approaches against their peers (see
fastgrad.bench). ``fastgrad gradients`` computes dJ/dθ of an MLP on scikit-learn's digits (1,797 8x8 images,
standardised) three ways — backprop, forward mode, finite differences — in every backend, and
prints how far each is from the numpy reference's backprop gradient and how long it took.
"""
import argparse
import functools
import sys

import numpy as np

from . import bench
from ._backends import BACKENDS
from ._kernels.codes import ACTIVATIONS
from .benchmarking import best_time
from .datasets import load_digits_standardised
from .network import GRADIENT_METHODS, MLP, default_eps


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def gradients(args):
    X, y = load_digits_standardised(args.samples)
    sizes = [X.shape[1], *args.hidden, 10]
    reference = MLP(sizes, args.activation, args.batchnorm, dtype=args.dtype, seed=args.seed,
                    backend="numpy")
    net_name = "-".join(map(str, sizes))
    bn = " + BatchNorm" if args.batchnorm else ""
    print(f"{net_name} {args.activation}{bn} network, cross-entropy, {args.dtype}, "
          f"{len(X)} digits, {reference.n_params} parameters")
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
    parser = Parser(prog="fastgrad", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    grad = commands.add_parser(
        "gradients", help="the three gradient methods in every backend, side by side",
        description="Compare backprop, forward mode and finite differences on digits.")
    grad.add_argument("--hidden", type=positive_int, nargs="+", default=[32],
                      help="hidden layer widths (default: 32)")
    grad.add_argument("--activation", choices=sorted(ACTIVATIONS), default="tanh")
    grad.add_argument("--batchnorm", action="store_true", help="BatchNorm after hidden layers")
    grad.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    grad.add_argument("--samples", type=positive_int, default=None,
                      help="use the first N digits (default: all 1,797)")
    grad.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    grad.add_argument("--seed", type=int, default=0)
    grad.set_defaults(run=gradients)
    bench.build_parser(commands.add_parser(
        "bench", help="the parallel and sequential speed targets side by side with peers",
        description=bench.__doc__.split("\n\n")[0]))
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, ImportError) as error:
        print(f"fastgrad: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
