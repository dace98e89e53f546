"""What an experiment measured — its runs, the data, the network and the settings — as a table
and as files: history.csv, results.json and the pictures (plots.py)."""
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from .plots import plot


@dataclass
class Comparison:
    """What ``compare`` measured: ``runs``, one Run per approach in order; the ``dataset``
    (name, task, sizes), the ``network`` and the ``settings`` it was given (every argument,
    and each approach's description and learning rate); ``initial_loss``, the training loss
    at the initial weights every run starts from; ``compile_seconds``, the warm-up that ran
    every kernel once before any run was timed; the ``environment`` (versions, machine)."""

    runs: list
    dataset: dict
    network: dict
    settings: dict
    initial_loss: float
    compile_seconds: float = 0.0
    environment: dict = field(default_factory=dict)

    def table(self):
        return [run.row() for run in self.runs]

    def format_table(self):
        """The table as text: one line per approach."""
        def cell(value, spec):  # spec: width.precision and type, e.g. "10.4f"
            return format("-", f">{spec.split('.')[0]}") if value is None else format(value, spec)

        lines = [f"{'approach':<18}{'train loss':>11}{'test loss':>10}{'train acc':>10}"
                 f"{'test acc':>9}{'epochs':>7}{'train s':>9}{'steps':>10}{'raised':>8}"
                 f"{'flipped':>8}"]
        for row in self.table():
            line = (f"{row['approach']:<18}{cell(row['train_loss'], '11.4f')}"
                    f"{cell(row['test_loss'], '10.4f')}{cell(row['train_accuracy'], '10.3f')}"
                    f"{cell(row['test_accuracy'], '9.3f')}{row['epochs']:>7}"
                    f"{row['train_seconds']:>9.2f}{row['steps']:>10}{row['raised']:>8}"
                    f"{cell(row['flipped_fraction'], '8.3f')}")
            if row["diverged"]:
                line += f"   DIVERGED: {row['diverged']}"
            lines.append(line)
        return "\n".join(lines)

    def history_rows(self):
        """One tidy row per approach and epoch (the contents of history.csv)."""
        return [row for run in self.runs for row in run.history_rows()]

    def save(self, out_dir):
        """Write loss_vs_epoch.png, loss_vs_seconds.png, accuracy.png, history.csv,
        results.json and each approach's trained network (networks/NAME.safetensors, for
        ``fastgrad.load``) into ``out_dir`` (made if missing); returns their paths."""
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot create the output directory {str(out)!r}: "
                             f"{error.strerror}") from None
        rows = self.history_rows()
        paths = [out / "history.csv", out / "results.json"]
        with open(paths[0], "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["approach"])
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        results = {"table": self.table(), "dataset": self.dataset, "network": self.network,
                   "settings": self.settings, "initial_loss": self.initial_loss,
                   "compile_seconds": self.compile_seconds,
                   "environment": self.environment}
        paths[1].write_text(json.dumps(results, indent=2) + "\n")
        for run in self.runs:
            if run.network is not None:
                (out / "networks").mkdir(exist_ok=True)
                paths.append(out / "networks" / f"{run.name}.safetensors")
                run.network.save(paths[-1])
        return paths + plot(self, out)
