"""The pictures of a comparison: one figure per question, a colour per approach kept across
them."""
from pathlib import Path

import numpy as np


# what each task's loss is called on the figures' axes
LOSS_NAMES = {"classification": "cross-entropy", "regression": "mean squared error",
              "multilabel": "binary cross-entropy", "poisson": "Poisson, exp(z) - y z"}


def plot(comparison, out_dir):
    """The three figures of a Comparison in ``out_dir``: training loss against epochs and
    against training seconds (log axis), and test accuracy (test loss for regression) against
    training seconds. One colour per approach across the three. Returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    colours = plt.get_cmap("tab10").colors
    # dashes too, so that approaches whose curves coincide stay visible
    styles = ("-", "--", ":", "-.")
    data = comparison.dataset
    where = (f"{data['name']}: {data['n_train']} training / {data['n_test']} test samples; "
             f"{comparison.network['label']}")
    task = data["task"]
    regression = task in ("regression", "poisson")  # no accuracy: the test loss instead
    loss_name = LOSS_NAMES[task]
    # the Poisson loss (without its constant y log y - y) can be negative: a linear axis
    log_loss = task != "poisson"
    accuracy = ("test accuracy (fraction with every label right)" if task == "multilabel"
                else "test accuracy (fraction right)")

    def figure(filename, title, xlabel, ylabel, series, log_x=False, log_y=True):
        fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
        for k, run in enumerate(comparison.runs):
            x, y = series(run)
            if not len(x):
                continue
            label = run.name + (" (diverged)" if run.diverged else "")
            ax.plot(x, y, color=colours[k % len(colours)], linestyle=styles[k % len(styles)],
                    label=label, linewidth=1.8, marker="o" if len(x) == 1 else None)
        ax.set_title(f"{title}\n{where}", fontsize=11)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=9)
        path = out / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def seconds(run):
        return np.cumsum(run.history.train_seconds)

    return [
        figure("loss_vs_epoch.png", "Training loss after each epoch (epoch 0: the shared "
               "initial weights)", "epoch", f"training loss ({loss_name})",
               lambda run: (np.arange(run.history.epochs + 1),
                            [comparison.initial_loss, *run.history.loss]), log_y=log_loss),
        figure("loss_vs_seconds.png", "Training loss against training time "
               "(evaluation not counted)", "training time (s, log scale)",
               f"training loss ({loss_name})",
               lambda run: (seconds(run), run.history.loss), log_x=True, log_y=log_loss),
        figure("accuracy.png", ("Test loss" if regression else "Test accuracy")
               + " against training time", "training time (s, log scale)",
               f"test loss ({loss_name})" if regression else accuracy,
               lambda run: (seconds(run), run.history.val_loss if regression
                            else run.history.val_accuracy), log_x=True,
               log_y=regression and log_loss),
    ]
