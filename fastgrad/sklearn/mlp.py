"""MLPClassifier and MLPRegressor: scikit-learn 1.9's estimators, every parameter with its name,
default and meaning, trained by fastgrad (``fastgrad.train`` with an approach and callbacks).

What is scikit-learn's, and kept:

- the network: ``hidden_layer_sizes`` of ``activation`` ("logistic" is fastgrad's sigmoid),
  softmax outputs for several classes, one logistic output for two, one per label for a
  multi-label target; identity outputs for the squared error, exp for ``loss="poisson"``;
- the objective: the mean (``sample_weight``-weighted) loss plus alpha / (2 n) · Σ‖W‖², n the
  sum of the weights (fastgrad's ``MLP(alpha=...)``); the multi-label and Poisson losses sum
  over the outputs, and the squared error's gradient is that of half the sum over them;
- the initial weights: Glorot-uniform, drawn from ``random_state``'s stream in scikit-learn's
  order (a layer's coefficients, then its intercepts), so the same seed starts from the same
  weights; the early-stopping split is the next draw from that stream;
- the solvers "sgd" (momentum, Nesterov, the "constant", "invscaling" and "adaptive" learning
  rates; a new rate rescales torch's momentum buffer so the velocity keeps the old rate's
  steps, as scikit-learn's does), "adam" (``Adam(correct_eps=True)``: scikit-learn's epsilon)
  and "lbfgs" (scipy's L-BFGS-B with ``max_iter``, ``max_fun`` and ``tol``);
- the stopping rule (``tol``, ``n_iter_no_change``, on the running training loss or, with
  ``early_stopping``, the validation score, whose best epoch's weights are put back), the
  ConvergenceWarning, ``verbose``'s lines, and the fitted attributes.

What differs, and why:

- the batches are drawn from a numpy Generator seeded from ``random_state``'s stream (kept
  across ``partial_fit`` and warm-started fits), not from the RandomState itself: with
  ``shuffle`` and minibatches the trajectory is another draw of the same process; with full
  batches or ``shuffle=False``, "sgd", "adam" and "lbfgs" take scikit-learn's steps to
  round-off (tested);
- the early-stopping split is stratified for every single-label classifier (scikit-learn
  1.9 stratifies binary targets only);
- ``warm_start`` keeps the optimizer's state (scikit-learn's makes a new one each ``fit``);
  ``partial_fit`` keeps it in both;
- ``loss_`` of a multi-output squared error is the objective the gradient descends (half the
  sum over the outputs; scikit-learn reports half their mean); the Poisson ``loss_`` adds
  the whole training set's weighted mean of y log y − y where scikit-learn adds each batch's
  (the same without sample weights); the log-loss is not clipped at machine epsilon;
- ``lbfgs`` ignores ``early_stopping``, as scikit-learn's does, and has no ``loss_curve_``
  (``history_`` holds its run);
- sparse input is densified (the kernels work on dense rows): mind the memory of a wide
  sparse matrix;
- ``batchnorm=True`` (fastgrad's) refuses batches of one sample, as torch's BatchNorm1d does;
- the network computes in its own dtype: a float32 network predicts float32 from float64
  input (scikit-learn's would compute in float64);
- ``sample_weight`` must be non-negative (fastgrad refuses negative weights; scikit-learn
  takes them), and ``loss="poisson"`` refuses negative targets (scikit-learn trains on them
  with a NaN loss);
- the stopping rule counts a NaN figure as no improvement (scikit-learn's comparisons count
  it as one); a diverging fit raises scikit-learn's ValueError, with fastgrad's
  NonFiniteStep (the epoch and step) as its cause.

fastgrad's own parameters: ``batchnorm``, ``dtype`` (None: the input's, float32 kept as
float32, anything else as float64), ``backend`` ("cython", "numba", "numpy"). ``solver`` also
takes "sequential" (Newton sweeps of single-coordinate steps, ``Sequential(step="newton")``:
it reads ``learning_rate_init`` in thousandths, lr = 1000 · learning_rate_init, 1.0 by
default — a Newton step is scaled by its curvature, and lr only bounds it where the curvature
is below 1/lr, so its values are about a thousand times Adam's for the same boldness),
"layerwise" (one layer at a time with Adam's rule and ``learning_rate_init``) and any fastgrad
approach object, which the estimator clones and uses with its own options (then
``learning_rate_init``, ``momentum``, ``batch_size``, ``shuffle``, ``beta_*`` and ``epsilon``
are its options' business, not the estimator's: set them as ``solver__lr`` and so on).
"""
import copy
import math
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse
import scipy.special
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                      validate_data)

from ..approaches import LBFGS, Approach, LayerWise, Parallel, Sequential
from ..errors import NonFiniteStep
from ..model import MLP
from ..model.backends import BACKENDS
from ..optim import SGD, Adam
from ..training import EarlyStopping, train

# scikit-learn's activation names, as fastgrad calls them
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
# the solvers by name: scikit-learn's three and fastgrad's approaches
SOLVERS = ("adam", "sgd", "lbfgs", "sequential", "layerwise")
# "sequential" reads learning_rate_init in thousandths (see the module docstring)
SEQUENTIAL_LR_SCALE = 1000.0
# scikit-learn's "auto" batch size: min(AUTO_BATCH, n_samples)
AUTO_BATCH = 200
# the adaptive learning rate divides by this on a plateau, down to ADAPTIVE_FLOOR
ADAPTIVE_DIVISOR, ADAPTIVE_FLOOR = 5.0, 1e-6
# scikit-learn's error for a fit that diverged (fastgrad's NonFiniteStep is its cause)
NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large "
              "values and need to be preprocessed.")


class _SklearnRules(EarlyStopping):
    """scikit-learn's MLP bookkeeping after each epoch of a fit, in its order: ``t_``,
    ``n_iter_``, ``loss_`` and ``loss_curve_`` from the epoch's running loss, the "Iteration"
    line; then the stopping rule (EarlyStopping's, on the running loss or the validation
    score, whose best epoch it puts back with ``early_stopping``); then the learning-rate
    schedule. It lives as long as the fit (a warm start or ``partial_fit`` carries its best
    figure and epochs waited over, as scikit-learn's attributes do)."""

    def __init__(self, estimator, validation):
        self.estimator, self.validation = estimator, validation
        self.monitors_validation = validation is not None
        monitor = self.validation_score if self.monitors_validation else "running_loss"
        super().__init__(math.inf, monitor, restore_best=self.monitors_validation,
                         mode="max" if self.monitors_validation else "min",
                         reset_each_run=False)
        self.previous_epochs = 0  # the estimator's History's epochs before this run
        self.best_in_history = None  # the best epoch, counted in the estimator's History
        self.update_options()

    def update_options(self):
        """The estimator's current tol and n_iter_no_change (a warm start may change them)."""
        self.patience = self.estimator.n_iter_no_change + 1
        self.min_delta = float(self.estimator.tol)

    def validation_score(self, run):
        X_val, y_val, weight_val = self.validation
        score = self.estimator._score_arrays(X_val, y_val, weight_val)
        self.estimator.validation_scores_.append(score)
        if self.estimator.verbose:
            print(f"Validation score: {score:f}")
        return score

    def on_train_start(self, run):
        super().on_train_start(run)
        self.stopped = False

    def on_epoch_end(self, run):
        est = self.estimator
        est.n_iter_ += 1
        est.t_ += len(run.data.X)
        est.loss_ = run.history.running_loss[-1] + est._loss_constant
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        best_before = (self.best, self.best_epoch)
        super().on_epoch_end(run)
        if (self.best, self.best_epoch) != best_before:  # this epoch is the best so far
            self.best_in_history = self.previous_epochs + run.epoch
        if est._schedule() == "invscaling":
            est._set_learning_rate(run.approach,
                                   est.learning_rate_init / (est.t_ + 1) ** est.power_t)

    def on_plateau(self, run):
        est = self.estimator
        figure = "Validation score" if self.monitors_validation else "Training loss"
        message = (f"{figure} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
        adaptive = est._schedule() == "adaptive"
        if adaptive and est._learning_rate > ADAPTIVE_FLOOR:
            est._set_learning_rate(run.approach, est._learning_rate / ADAPTIVE_DIVISOR)
            if est.verbose:
                print(f"{message} Setting learning rate to {est._learning_rate:f}")
            return False
        if est.verbose:
            print(message + (" Learning rate too small. Stopping." if adaptive
                             else " Stopping."))
        self.stopped = True
        return True


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: the parameters, fit and partial_fit, the
    solvers and the fitted attributes."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions(set(SOLVERS)), Approach],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "batchnorm": ["boolean"],
        "dtype": [None, StrOptions({"float32", "float64"})],
        "backend": [StrOptions(set(BACKENDS))],
    }

    # ------------------------------------------------------------------ the fitted network
    @property
    def coefs_(self):
        """The layers' weight matrices, (n_in, n_out) each: views into ``net_``'s parameters,
        so writing into one moves the network; assigning a list copies it in (same shapes)."""
        return [layer.W for layer in self.net_.layers]

    @coefs_.setter
    def coefs_(self, values):
        self._assign("coefs_", values, [layer.W for layer in self.net_.layers])

    @property
    def intercepts_(self):
        """The layers' bias vectors: views into ``net_``'s parameters (assignable as
        ``coefs_``)."""
        return [layer.b for layer in self.net_.layers]

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign("intercepts_", values, [layer.b for layer in self.net_.layers])

    def _assign(self, name, values, targets):
        values = [np.asarray(value) for value in values]
        if [value.shape for value in values] != [target.shape for target in targets]:
            raise ValueError(f"{name} must hold arrays of shapes "
                             f"{[target.shape for target in targets]}; got "
                             f"{[value.shape for value in values]}")
        if not all(np.isfinite(value).all() for value in values):
            raise ValueError(f"{name} must be finite")
        for target, value in zip(targets, values):
            target[:] = value

    def _schedule(self):
        """The learning-rate schedule in force: scikit-learn's apply to solver="sgd" alone."""
        return self.learning_rate if self.solver == "sgd" else "constant"

    def _is_lbfgs(self):
        return self.solver == "lbfgs" or isinstance(self.solver, LBFGS)

    def _stratifiable(self, y):
        """Whether the early-stopping split can be stratified: single-label classes of at
        least two samples each, no more of them than either part holds (else, as scikit-learn
        does for several classes, it is not)."""
        if not self._labels() or np.ndim(y) != 1:
            return False
        _, counts = np.unique(y, return_counts=True)
        n_val = math.ceil(self.validation_fraction * len(y))
        return counts.min() >= 2 and len(counts) <= min(n_val, len(y) - n_val)

    def _check_solver(self):
        if self._is_lbfgs():
            raise AttributeError(f"partial_fit is only available for solvers that train by "
                                 f"epochs; {self.solver!r} is not one")
        return True

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (with ``sample_weight``, one
        non-negative weight per sample); returns the fitted estimator."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if any(size <= 0 for size in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        first_pass = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        X, y, targets = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X, targets, hidden, random_state)
        else:
            self._follow_parameters(hidden)
        if self._is_lbfgs():
            self._fit_lbfgs(X, targets, sample_weight, first_pass)
        else:
            self._fit_epochs(X, y, targets, sample_weight, incremental, first_pass,
                             random_state)
        if not np.isfinite(self.net_.params).all():
            raise ValueError(NON_FINITE)
        return self

    def _follow_parameters(self, hidden):
        """On a continuation, the fitted network takes the current alpha, activation and
        backend (as scikit-learn's reads them at each step): a network rebuilt with them and
        the fitted weights, the optimizer's state carried over to it; a change of the layers
        is refused."""
        config = self.net_.config()
        sizes = (config["sizes"][0], *hidden, config["sizes"][-1])
        if tuple(sizes) != tuple(config["sizes"]) or self.batchnorm != config["batchnorm"]:
            raise ValueError(f"warm_start and partial_fit continue the fitted network "
                             f"({self.net_.label}, batchnorm={config['batchnorm']}); "
                             f"hidden_layer_sizes={list(hidden)}, batchnorm={self.batchnorm} "
                             f"ask for another: fit with warm_start=False")
        wanted = {"alpha": float(self.alpha), "activation": ACTIVATIONS[self.activation],
                  "backend": self.backend}
        if all(config[name] == value for name, value in wanted.items()):
            return
        net = MLP.from_config({**config, **wanted})
        net.load_state_dict(self.net_.state_dict())
        self.net_ = net
        if self._approach is not None:  # its state, not its binding to the old network
            self._approach = copy.deepcopy(self._approach)

    def _network_dtype(self, X):
        """A new network's dtype: ``dtype``, else the input's (float32 kept, else float64)."""
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)

    def _check_X(self, X):
        """X to predict on, checked by scikit-learn (features, names, finite) and dense."""
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32),
                          reset=False)
        return self._dense(X, reset=False)

    def _dense(self, X, reset):
        """Checked X as the kernels take it: dense (a sparse matrix densified), C-contiguous,
        in the network's dtype (a new network's, on a first fit)."""
        if scipy.sparse.issparse(X):
            X = X.toarray()
        return np.ascontiguousarray(X, dtype=self._network_dtype(X) if reset else self.net_.dtype)

    def _initialize(self, X, targets, hidden, random_state):
        """A new network and fresh bookkeeping: scikit-learn's _initialize."""
        n_outputs = 1 if targets.ndim == 1 else targets.shape[1]
        if self._labels() and self._output_loss() == "cross_entropy":
            n_outputs = len(self.classes_)
        self.n_outputs_, self.n_layers_ = n_outputs, len(hidden) + 2
        self.out_activation_ = self._out_activation()
        sizes, loss = (X.shape[1], *hidden, n_outputs), self._output_loss()
        # scikit-learn's losses sum a sample's per-output terms (cross-entropy has one term)
        self.net_ = MLP(sizes, activation=ACTIVATIONS[self.activation], batchnorm=self.batchnorm,
                        loss=loss, output_reduction="mean" if loss == "cross_entropy" else "sum",
                        alpha=self.alpha, dtype=X.dtype, backend=self.backend)
        # scikit-learn's Glorot-uniform draws, in its order: a layer's coefficients, then its
        # intercepts (float64 draws, cast to the network's dtype)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for layer in self.net_.layers:
            bound = np.sqrt(factor / (layer.n_in + layer.n_out))
            layer.W[:] = random_state.uniform(-bound, bound, (layer.n_in, layer.n_out))
            layer.b[:] = random_state.uniform(-bound, bound, layer.n_out)
        self.n_iter_, self.t_ = 0, 0
        self.history_ = None
        self._approach = self._rules = None
        self._rng = None  # drawn from random_state after the early-stopping split
        self._learning_rate = float(self.learning_rate_init)
        if not self._is_lbfgs():
            self._start_bookkeeping()

    def _start_bookkeeping(self):
        """The epoch solvers' fitted figures, empty (scikit-learn's _initialize)."""
        self.loss_curve_ = []
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _approach_for(self, batch_size):
        """The approach of this fit: the kept one on a continuation (its optimizer state and
        learning rate go on, its options brought to the current parameters'), else a new one
        from ``solver`` (an approach object is cloned: the estimator never changes it)."""
        fresh = self._named_approach(batch_size) if isinstance(self.solver, str) else (
            clone(self.solver))
        kept = self._approach
        if kept is None or type(kept) is not type(fresh):
            return fresh
        parts = [name for name, value in fresh.get_params(deep=False).items()
                 if hasattr(value, "get_params")]
        if any(type(getattr(kept, name)) is not type(getattr(fresh, name)) for name in parts):
            return fresh  # another optimizer: a fresh state for it
        options = {name: value for name, value in fresh.get_params(deep=True).items()
                   if not hasattr(value, "get_params")}
        kept.set_params(**options)
        return kept

    def _named_approach(self, batch_size):
        lr = self._learning_rate
        if self.solver == "lbfgs":
            return LBFGS(max_iter=self.max_iter, max_fun=self.max_fun, tol=self.tol)
        if self.solver == "sequential":
            return Sequential(order="cyclic", lr=SEQUENTIAL_LR_SCALE * lr, step="newton",
                              batch_size=batch_size, shuffle=self.shuffle)
        if self.solver == "sgd":
            optimizer = SGD(lr, momentum=self.momentum,
                            nesterov=self.nesterovs_momentum and self.momentum > 0)
        else:
            optimizer = Adam(lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                             correct_eps=True)
        kind = LayerWise if self.solver == "layerwise" else Parallel
        return kind(optimizer=optimizer, batch_size=batch_size, count_raised=False,
                    shuffle=self.shuffle)

    def _set_learning_rate(self, approach, lr):
        """A new rate (the schedules of solver="sgd", a warm start's learning_rate_init): the
        optimizer's lr, and an SGD momentum buffer rescaled by old/new, so that the remembered
        velocity keeps the old rate's steps as scikit-learn's does (torch's buffer holds
        gradients, which the new rate would scale)."""
        old, self._learning_rate = self._learning_rate, float(lr)
        optimizer = getattr(approach, "optimizer", None)
        if not isinstance(self.solver, str) or optimizer is None:
            return  # an approach object keeps its own rate; L-BFGS and sweeps have no optimizer
        optimizer.lr = self._learning_rate
        if isinstance(optimizer, SGD) and optimizer.momentum > 0 and approach.bound is not None:
            approach.bound.state[0] *= old / self._learning_rate

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(AUTO_BATCH, n_samples)
        if self.batch_size > n_samples:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped")
        return int(np.clip(self.batch_size, 1, n_samples))

    def _fit_epochs(self, X, y, targets, sample_weight, incremental, first_pass, random_state):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X_train, targets_train, weight_train, validation = X, targets, sample_weight, None
        if self.early_stopping:
            stratify = y if self._stratifiable(y) else None
            arrays = [X, targets, y] + ([] if sample_weight is None else [sample_weight])
            parts = train_test_split(*arrays, random_state=random_state,
                                     test_size=self.validation_fraction, stratify=stratify)
            X_train, X_val, targets_train, _, _, y_val = parts[:6]
            weight_train, weight_val = (None, None) if sample_weight is None else parts[6:]
            if len(X_val) < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            validation = (X_val, y_val, weight_val)
        if self._rng is None:
            self._rng = np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
        batch_size = self._batch_size(len(X_train))
        if self.batchnorm and batch_size < 2:
            raise ValueError(f"batchnorm=True needs batches of at least 2 samples (BatchNorm's "
                             f"batch statistics); got {len(X_train)} sample(s) and batch size "
                             f"{batch_size}")
        if not (first_pass or incremental) and self._approach is not None:
            # a warm start begins at learning_rate_init, as scikit-learn's new optimizer does
            self._set_learning_rate(self._approach, self.learning_rate_init)
        self._approach = approach = self._approach_for(batch_size)
        rules = self._rules
        if not hasattr(self, "loss_curve_"):  # continuing a fit by L-BFGS
            self._start_bookkeeping()
        if rules is None or first_pass or rules.monitors_validation != self.early_stopping:
            rules = self._rules = _SklearnRules(self, validation)
            if not first_pass:  # early_stopping switched on or off on a warm start
                curve = self.loss_curve_
                self._start_bookkeeping()
                self.loss_curve_ = curve
        rules.validation = validation
        rules.previous_epochs = 0 if first_pass or self.history_ is None else (
            self.history_.epochs)
        rules.update_options()
        self._loss_constant = self._constant(targets_train, weight_train)
        self.n_iter_ = 0  # as scikit-learn's: the epochs of this call
        try:
            history = train(self.net_, X_train, targets_train, approach,
                            epochs=1 if incremental else self.max_iter, rng=self._rng,
                            sample_weight=weight_train, callbacks=[rules],
                            evaluate_training=False)
        except NonFiniteStep as error:
            raise ValueError(NON_FINITE) from error
        finally:
            rules.validation = None  # the fitted estimator keeps no held-out data
        self._keep(history, first_pass)
        self.history_.best_epoch = rules.best_in_history if self.early_stopping else None
        if self.early_stopping:
            self.best_validation_score_ = self._rules.best
        else:
            self.best_loss_ = self._rules.best + self._loss_constant
        if not incremental and not self._rules.stopped and self.n_iter_ == self.max_iter:
            figure = (f"the best validation score {self._rules.best:.6g}"
                      if self.early_stopping else f"the best training loss {self.best_loss_:.6g}")
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          f"and the optimization hasn't converged yet: the last loss is "
                          f"{self.loss_:.6g}, {figure}, and {self._rules.waited} of the "
                          f"{self.n_iter_no_change + 1} epochs without an improvement of "
                          f"tol={self.tol:g} that stop it had passed.", ConvergenceWarning)

    def _fit_lbfgs(self, X, targets, sample_weight, first_pass):
        if self._rng is None:
            self._rng = np.random.default_rng(0)  # L-BFGS draws nothing
        self._approach = approach = (LBFGS(max_iter=self.max_iter, max_fun=self.max_fun,
                                           tol=self.tol) if self.solver == "lbfgs"
                                     else clone(self.solver))
        try:
            history = train(self.net_, X, targets, approach, epochs=1, rng=self._rng,
                            sample_weight=sample_weight)
        except NonFiniteStep as error:
            raise ValueError(NON_FINITE) from error
        self._keep(history, first_pass)
        self.n_iter_ = int(history.steps[-1])
        self.loss_ = history.loss[-1] + self._constant(targets, sample_weight)
        if self.verbose:
            print(f"L-BFGS: {self.n_iter_} iterations, "
                  f"{history.figures['evaluations'][-1]} evaluations, loss = {self.loss_:.8f}")
        if not history.figures["converged"][-1]:
            warnings.warn(
                f"lbfgs failed to converge after {self.n_iter_} iteration(s) and "
                f"{history.figures['evaluations'][-1]} evaluations of the loss (max_iter="
                f"{approach.max_iter}, max_fun={approach.max_fun}): the largest gradient "
                f"component is {history.figures['gradient_max'][-1]:.3g}, above tol="
                f"{approach.tol:g}. Increase max_iter or max_fun, or scale the data.",
                ConvergenceWarning)

    def _keep(self, history, first_pass):
        if first_pass or self.history_ is None:
            self.history_ = history
        else:
            self.history_.extend(history)

    def _constant(self, targets, sample_weight):
        """What scikit-learn's Poisson loss adds to fastgrad's: the weighted mean over the
        samples of Σ (y log y − y), which moves no weight (0 for the other losses)."""
        if self._output_loss() != "poisson":
            return 0.0
        y = targets.reshape(len(targets), -1).astype(np.float64)
        terms = (scipy.special.xlogy(y, y) - y).sum(axis=1)
        return float(np.average(terms, weights=sample_weight))

    # ------------------------------------------------------------------ predicting
    def _outputs(self, X):
        """The network's outputs on checked X, in evaluation mode: probabilities for a
        classifier, predictions for a regressor."""
        return self.net_.predict_proba(X) if self._labels() else self.net_.predict(X)

    def _score_arrays(self, X, y, sample_weight):
        """scikit-learn's score on checked arrays (NaN when a prediction is not finite)."""
        predicted = self._predict_checked(X)
        if np.issubdtype(predicted.dtype, np.floating) and not np.isfinite(predicted).all():
            return np.nan
        return float(self._score_function(y, predicted, sample_weight=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _init_parameters(self, hidden_layer_sizes, activation, solver, alpha, batch_size,
                     learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                     random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                     early_stopping, validation_fraction, beta_1, beta_2, epsilon,
                     n_iter_no_change, max_fun, batchnorm, dtype, backend):
    """Store every parameter unchanged (scikit-learn's rule for __init__)."""
    for name, value in locals().items():
        if name != "self":
            setattr(self, name, value)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier on fastgrad's kernels.

    The parameters are scikit-learn 1.9's, with their names, defaults and meanings (see
    sklearn.neural_network.MLPClassifier), and fastgrad's:

    solver : also "sequential" (Newton sweeps, lr = 1000 · learning_rate_init), "layerwise"
        (one layer at a time, Adam's rule) or a fastgrad approach object (cloned; its options
        are nested parameters, ``solver__lr``).
    batchnorm : BatchNorm after each hidden Dense layer (default False); batches of at least
        2 samples; prediction uses the running statistics.
    dtype : "float32", "float64" or None (the default: the input's, float32 kept).
    backend : "cython" (default), "numba" or "numpy" (the readable reference).

    Where scikit-learn's estimator and this one differ (fastgrad/sklearn/mlp.py lists it all):
    with shuffled minibatches the batches come from a generator of fastgrad's (another draw of
    the same process); early stopping stratifies every single-label target; ``warm_start``
    keeps the optimizer's state; the log-loss is not clipped at machine epsilon; sparse input
    is densified.

    Fitted attributes: scikit-learn's ``classes_``, ``coefs_``, ``intercepts_``, ``loss_``,
    ``best_loss_``, ``loss_curve_``, ``validation_scores_``, ``best_validation_score_``,
    ``t_``, ``n_iter_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``,
    ``n_features_in_`` (and ``feature_names_in_``), with their meanings (``coefs_`` and
    ``intercepts_`` are views into the network); fastgrad's ``net_`` (the fastgrad.MLP) and
    ``history_`` (the fastgrad.History of every epoch trained, a continued fit appended).
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 batchnorm=False, dtype=None, backend="cython"):
        _init_parameters(self, hidden_layer_sizes, activation, solver, alpha, batch_size,
                         learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                         random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                         early_stopping, validation_fraction, beta_1, beta_2, epsilon,
                         n_iter_no_change, max_fun, batchnorm, dtype, backend)

    _score_function = staticmethod(accuracy_score)

    def _labels(self):
        return True

    def _output_loss(self):
        return ("cross_entropy" if self._label_binarizer.y_type_ == "multiclass"
                else "binary_cross_entropy")

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        """(X, y, targets): X dense in the network's dtype, y the labels as given (checked),
        targets what fastgrad trains on — class indices for several classes, 0/1 for two,
        the 0/1 matrix for several labels."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        binary = self._label_binarizer.transform(y)
        if self._label_binarizer.y_type_ == "multiclass":
            targets = binary.argmax(axis=1).astype(np.int64)
        elif binary.shape[1] == 1:
            targets = binary[:, 0].astype(np.int64)
        else:
            targets = binary.astype(np.int64)
        return self._dense(X, reset), y, targets

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch on (X, y), continuing the fit so far (the optimizer's state and the
        generator's stream go on: two calls equal a two-epoch ``fit`` with the same seed).
        ``classes`` (every class of every call) is required on the first call, when there is
        no ``classes_`` yet; a call after ``fit`` continues it."""
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None:
            if getattr(self, "classes_", None) is not None:
                if not np.array_equal(self.classes_, unique_labels(classes)):
                    raise ValueError(f"`classes={classes!r}` is not the same as on last call "
                                     f"to partial_fit, was: {self.classes_!r}")
            else:
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
                self.classes_ = self._label_binarizer.classes_
        return self._fit(X, y, sample_weight, incremental=True)

    def _predict_checked(self, X):
        probabilities = self._outputs(X)
        return self._label_binarizer.inverse_transform(probabilities)

    def predict(self, X):
        """The predicted classes (for a multi-label target, the 0/1 indicator matrix)."""
        check_is_fitted(self)
        return self._predict_checked(self._check_X(X))

    def predict_proba(self, X):
        """Probability estimates, (n_samples, n_classes), classes ordered as ``classes_``."""
        check_is_fitted(self)
        probabilities = self._outputs(self._check_X(X))
        if probabilities.ndim == 1:
            return np.vstack([1 - probabilities, probabilities]).T
        return probabilities

    def predict_log_proba(self, X):
        """The log of ``predict_proba``."""
        probabilities = self.predict_proba(X)
        return np.log(probabilities, out=probabilities)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor on fastgrad's kernels.

    ``loss`` is "squared_error" (half the squared error, identity outputs) or "poisson" (half
    the Poisson deviance, exp outputs, non-negative targets); the other parameters are those
    of MLPClassifier (scikit-learn 1.9's plus ``batchnorm``, ``dtype`` and ``backend``, and
    the further solvers). Fitted attributes as MLPClassifier's, without ``classes_``.

    Where scikit-learn's estimator and this one differ, beyond MLPClassifier's list: with
    several outputs, ``loss_`` is the objective the squared error's gradient descends (half
    the sum over the outputs; scikit-learn reports half their mean); the Poisson ``loss_``
    adds the whole training set's weighted mean of y log y − y, where scikit-learn adds each
    batch's (the same without sample weights).
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 batchnorm=False, dtype=None, backend="cython"):
        self.loss = loss
        _init_parameters(self, hidden_layer_sizes, activation, solver, alpha, batch_size,
                         learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                         random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                         early_stopping, validation_fraction, beta_1, beta_2, epsilon,
                         n_iter_no_change, max_fun, batchnorm, dtype, backend)

    _score_function = staticmethod(r2_score)

    def _labels(self):
        return False

    def _output_loss(self):
        return self.loss

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson "
                             "regression.")
        X = self._dense(X, reset)
        return X, y, np.asarray(y, dtype=X.dtype)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on (X, y), continuing the fit so far (see MLPClassifier.partial_fit); with
        solver="lbfgs", as scikit-learn's regressor, an L-BFGS run from the current weights."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _predict_checked(self, X):
        predicted = self._outputs(X)
        return predicted.ravel() if predicted.ndim == 2 and predicted.shape[1] == 1 else predicted

    def predict(self, X):
        """The predicted values, (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict_checked(self._check_X(X))


__all__ = ["MLPClassifier", "MLPRegressor", "SOLVERS"]
