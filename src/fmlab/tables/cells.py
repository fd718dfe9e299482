"""One table cell: a metric over the seeds of one configuration, and a published number to hold
it against."""

import statistics
from dataclasses import dataclass, field

from fmlab.tables.runs import Run

# What a table prints of a logged metric: the value, a percentage, or an error rate in percent.
TRANSFORMS = {
    "raw": lambda x: x,
    "pct": lambda x: 100.0 * x,
    "error_pct": lambda x: 100.0 * (1.0 - x),
}

# Footnote marks, in the order the footnotes are printed.
FAILED, SHORT, UNOFFICIAL = "†", "‡", "§"


@dataclass
class Cell:
    """The complete runs' values of one configuration, and the runs that did not count."""

    values: list[float] = field(default_factory=list)
    counted: list[Run] = field(default_factory=list)  # the runs behind ``values``
    problems: list[Run] = field(default_factory=list)  # failed, unfinished, stale, no metric
    expected: int | None = None  # seeds asked for; None: not known

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n − 1); None below two seeds."""
        return statistics.stdev(self.values) if self.n > 1 else None

    @property
    def short(self) -> bool:
        return self.expected is not None and self.n < self.expected

    @property
    def unofficial(self) -> list[Run]:
        return [r for r in self.counted if r.official is False]

    @property
    def marks(self) -> str:
        return (
            (FAILED if self.problems else "")
            + (SHORT if self.short else "")
            + (UNOFFICIAL if self.unofficial else "")
        )


def aggregate(
    runs: list[Run], metric: str, transform: str = "raw", expected: int | None = None
) -> Cell:
    """Mean, sample std and n of ``metric`` over the complete runs; the others are kept as
    problems, except runs never launched ("missing"), which only make the cell short."""
    cell = Cell(expected=expected)
    for run in runs:
        if run.complete and metric in run.metrics:
            cell.values.append(TRANSFORMS[transform](run.metrics[metric]))
            cell.counted.append(run)
        elif run.complete:
            cell.problems.append(Run(run.where, f"did not log {metric}", run.config))
        elif run.status != "missing":
            cell.problems.append(run)
    return cell


def difference(a: Cell, b: Cell) -> tuple[float, float] | None:
    """Mean of ``a`` minus mean of ``b`` and the standard error of that difference (independent
    seeds: sqrt(s_a²/n_a + s_b²/n_b)); None below two seeds in either."""
    if a.std is None or b.std is None:
        return None
    return a.mean - b.mean, (a.std**2 / a.n + b.std**2 / b.n) ** 0.5


def best_means(cells: list[Cell], better: str, digits: int) -> set[int]:
    """Indices of the cells whose mean, as printed, is the best (ties are all best)."""
    shown = {i: round(c.mean, digits) for i, c in enumerate(cells) if c.n}
    if not shown:
        return set()
    best = max(shown.values()) if better == "higher" else min(shown.values())
    return {i for i, v in shown.items() if v == best}


@dataclass(frozen=True)
class Reference:
    """A published number, or range, with the tolerance within which ours reproduces it."""

    low: float
    high: float
    tolerance: float

    def delta(self, value: float) -> float:
        """How far ``value`` lies outside the reference (0 inside a range), with its sign."""
        if value < self.low:
            return value - self.low
        if value > self.high:
            return value - self.high
        return 0.0

    def within(self, value: float) -> bool:
        return abs(self.delta(value)) <= self.tolerance + 1e-12

    def text(self) -> str:
        if self.low == self.high:
            return f"{self.low:g}"
        return f"{self.low:g}–{self.high:g}"

    def verdict(self, cell: Cell) -> str:
        if not cell.n:
            return "not run"
        word = "✓ within" if self.within(cell.mean) else "✗ outside"
        return f"{word} ±{self.tolerance:g}"
