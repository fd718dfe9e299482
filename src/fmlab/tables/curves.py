"""Learning curves of a table's runs, from the metrics.csv each job's CSV logger wrote."""

import csv
import logging
import math
from collections import defaultdict
from pathlib import Path

log = logging.getLogger(__name__)


def metrics_file(job: Path) -> Path | None:
    """The job's CSV log: <job>/csv/metrics.csv (or under a version folder, if one was set)."""
    found = sorted(Path(job).glob("csv/**/metrics.csv"))
    return found[-1] if found else None


def read_series(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Each logged metric as (step, value) pairs (Lightning leaves other metrics' cells empty)."""
    series = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step")
            if not step:
                continue
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in ("", None):
                    series[key].append((int(float(step)), float(value)))
    return dict(series)


def smoothed(values: list[float], smooth: float) -> list[float]:
    """Exponential moving average, debiased at the start (as TensorBoard draws it)."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = smooth * average + (1 - smooth) * value
        out.append(average / (1 - smooth**i) if smooth else value)
    return out


def plot_curves(
    groups: list[tuple[str, list[Path]]],
    metrics: list[str],
    out_base: Path,
    title: str = "",
    smooth: float = 0.0,
) -> list[Path]:
    """One panel per metric, one colour per group (row), one line per job (seed).

    Writes ``out_base``.png and .pdf and returns their paths; nothing when no metric is asked
    for (a grid spec's default), and nothing with a warning when no job logged any of them, e.g.
    runs made with ``logger=none``.
    """
    if not metrics:
        return []
    data = [
        (label, [read_series(f) for f in map(metrics_file, jobs) if f is not None])
        for label, jobs in groups
    ]
    panels = [m for m in metrics if any(m in s for _, runs in data for s in runs)]
    if not panels:
        log.warning("No learning curves: no job logged %s to csv/metrics.csv.", metrics)
        return []
    # The object API, not pyplot: no global figure state and no GUI backend (Agg draws the PNG).
    from matplotlib.figure import Figure

    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, panels, strict=False):
        for colour, (label, runs) in enumerate(data):
            for i, series in enumerate(s[metric] for s in runs if metric in s):
                steps, values = zip(*series, strict=True)
                ax.plot(
                    steps,
                    smoothed(list(values), smooth),
                    color=f"C{colour}",
                    alpha=0.8,
                    linewidth=1.0,
                    label=label if i == 0 else None,
                )
        ax.set(title=metric, xlabel="step")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title + (f" (smoothed {smooth:g})" if smooth else ""))
    return save_figure(fig, out_base)


def save_figure(fig, out_base: Path) -> list[Path]:
    """``out_base``.png and .pdf of a matplotlib Figure, their paths; the PDF without its creation
    date, so the same runs give the same file."""
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_base.with_suffix(".png"), out_base.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1], metadata={"CreationDate": None})
    return paths
