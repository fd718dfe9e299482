"""A grid spec drawn as a figure: the metric against one grid key (log2 axis), one line per value
of another, one panel per value of a third, as in the μTransfer figure of Yang et al. 2022 (the
best learning rate against width, SP and μP side by side). Its table holds the same numbers: one
row per line, one column per x value, the best of each row in bold and where it sits."""

import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from fmlab.tables.cells import Cell, best_means
from fmlab.tables.curves import save_figure
from fmlab.tables.render import Entry, Grid, describe, footnotes, value_entry
from fmlab.tables.spec import Row, TableSpec, key_name, value_text

log = logging.getLogger(__name__)


@dataclass
class Line:
    """One curve of one panel: a (row, cell) per x value, x ascending."""

    panel: object | None  # None: the figure has no panels
    curve: object
    points: list[tuple[Row, Cell]]


def counts(cell: Cell) -> bool:
    """Whether a cell is drawn and can be the best: all its seeds complete, a finite mean."""
    return cell.n > 0 and not cell.short and math.isfinite(cell.mean)


def lines(spec: TableSpec, cells: list[Cell]) -> tuple[list[float], list[Line]]:
    """The x values, ascending, and the figure's lines, panel by panel, as the grid orders them.
    The figure's keys cover the grid (spec.py checks), so each point is one row."""
    fig, grid = spec.figure, dict(spec.grid)
    xs = sorted(grid[fig.x])
    at = {}
    for row, cell in zip(spec.rows, cells, strict=True):
        point = dict(row.point)
        at[point.get(fig.panels), point[fig.curves], point[fig.x]] = (row, cell)
    found = [
        Line(panel, curve, [at[panel, curve, x] for x in xs])
        for panel in (grid[fig.panels] if fig.panels else (None,))
        for curve in grid[fig.curves]
    ]
    return xs, found


def best_index(line: Line, better: str) -> int | None:
    """The x position of the line's best mean over the cells that count; None when none does."""
    means = {i: cell.mean for i, (_, cell) in enumerate(line.points) if counts(cell)}
    if not means:
        return None
    pick = max if better == "higher" else min
    return pick(means, key=means.get)


def figure_grid(spec: TableSpec, cells: list[Cell]) -> Grid:
    """The figure's points as a table: a row per line, a column per x value, the best x last;
    a note per panel on where the optimum sits, then the usual footnotes."""
    fig = spec.figure
    xs, found = lines(spec, cells)
    x_name = key_name(fig.x)
    body = []
    for line in found:
        shown = [cell if counts(cell) else Cell() for _, cell in line.points]
        bold = best_means(shown, spec.better, spec.digits)
        best = best_index(line, spec.better)
        body.append(
            ([Entry(value_text(line.panel))] if fig.panels else [])
            + [Entry(value_text(line.curve))]
            + [
                value_entry(cell, spec.digits, bold=i in bold)
                for i, (_, cell) in enumerate(line.points)
            ]
            + [Entry("—" if best is None else value_text(xs[best]))]
        )
    names = [key_name(k) for k in (fig.panels, fig.curves) if k]
    header = [*names, *(f"{x_name}={value_text(x)}" for x in xs), f"best {x_name}"]
    caption = (
        f"{spec.title}: {describe(spec.metric, spec.transform)}, mean ± sample std over seeds "
        f"{', '.join(map(str, spec.seeds))}; {spec.better} is better. One row per "
        f"{' and '.join(names)}, one column per {x_name}; the best of each row in bold and its "
        f"{x_name} in the last column (cells with every seed complete)."
    )
    notes = [f"Reference: {spec.source}"] if spec.source else []
    notes += [optimum_note(spec, xs, panel) for panel in by_panel(found)]
    notes += [order_note(spec, xs, panel) for panel in by_panel(found)]
    notes += footnotes([(row.name, cell) for ln in found for row, cell in ln.points])
    notes += list(spec.notes)
    return Grid(caption, header, "l" * len(names) + "r" * (len(xs) + 1), body, notes)


def by_panel(found: list[Line]) -> list[list[Line]]:
    """The lines of each panel, panels in grid order."""
    order = dict.fromkeys(line.panel for line in found)
    return [[line for line in found if line.panel == panel] for panel in order]


def optimum_note(spec: TableSpec, xs: list[float], panel: list[Line]) -> str:
    """Where the best x sits on each line of a panel, and how far it moves from the first line to
    the last, in grid steps (positions among the sorted x values) and as a factor of x."""
    fig = spec.figure
    curve, x_name = key_name(fig.curves), key_name(fig.x)
    where = f"{key_name(fig.panels)}={value_text(panel[0].panel)}: " if fig.panels else ""
    best = [(line.curve, best_index(line, spec.better)) for line in panel]
    best = [(c, i) for c, i in best if i is not None]
    if not best:
        return f"{where}no line has a complete cell yet."
    sites = [
        f"{value_text(xs[i])} at {curve + '=' if k == 0 else ''}{value_text(c)}"
        for k, (c, i) in enumerate(best)
    ]
    text = f"{where}best {x_name} {', '.join(sites)}"
    if len(best) < 2:
        return text + "."
    (first, i), (last, j) = best[0], best[-1]
    steps = abs(j - i)
    direction = "" if j == i else (" up" if j > i else " down")
    return (
        f"{text}; from {curve}={value_text(first)} to {curve}={value_text(last)} the optimum "
        f"moves {steps} grid step{'' if steps == 1 else 's'}{direction} "
        f"(a factor of {xs[j] / xs[i]:g})."
    )


def order_note(spec: TableSpec, xs: list[float], panel: list[Line]) -> str:
    """At which x values the lines keep their order: each later curve value (a wider net) no
    worse than the one before it ("wider is better", Yang et al. 2022), over complete cells."""
    fig = spec.figure
    where = f"{key_name(fig.panels)}={value_text(panel[0].panel)}: " if fig.panels else ""
    ordered, broken = [], []
    for i, x in enumerate(xs):
        cells = [line.points[i][1] for line in panel]
        if not all(counts(c) for c in cells):
            continue
        means = [c.mean for c in cells]
        pairs = zip(means, means[1:], strict=False)
        keeps = all(b <= a if spec.better == "lower" else b >= a for a, b in pairs)
        (ordered if keeps else broken).append(value_text(x))
    curve, x_name = key_name(fig.curves), key_name(fig.x)
    text = f"{where}each larger {curve} no worse than the one before at "
    if not broken:
        return text + f"every {x_name} with complete cells ({', '.join(ordered) or 'none yet'})."
    return text + f"{x_name} {', '.join(ordered) or 'none'}; not at {', '.join(broken)}."


def figure_csv(spec: TableSpec, cells: list[Cell]) -> list[dict]:
    """One line per cell, full precision, for scripts."""
    xs, found = lines(spec, cells)
    return [
        {
            "table": spec.name,
            "panel": line.panel,
            "curve": line.curve,
            "x": x,
            "mean": cell.mean,
            "std": cell.std,
            "n": cell.n,
            "seeds_asked": cell.expected,
            "left_out": "; ".join(f"seed {r.seed}: {r.status}" for r in cell.problems),
        }
        for line in found
        for x, (_, cell) in zip(xs, line.points, strict=True)
    ]


def y_limits(values: list[float], better: str) -> tuple[float, float] | None:
    """The y range to draw, or None to let matplotlib choose. A run that diverged (a loss of 4
    where the rest lie near 1.5, an accuracy at chance) would squash every valley into a flat line:
    the range reaches from the best value three times the median distance of the points from it
    (most points lie near the valleys, so the median ignores the few that blew up), and what lies
    beyond leaves the axes, its line pointing where it went."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 3:
        return None
    best = min(finite) if better == "lower" else max(finite)
    reach = 3 * statistics.median(abs(v - best) for v in finite)
    if reach == 0 or max(abs(v - best) for v in finite) <= reach:
        return None
    pad = 0.05 * reach
    return (best - pad, best + reach) if better == "lower" else (best - reach, best + pad)


def plot_figure(spec: TableSpec, cells: list[Cell], out_base: Path) -> list[Path]:
    """``out_base``.png and .pdf: one panel per panel value, one coloured line per curve value,
    each line's best point starred; cells that do not count are left out. Nothing (and a
    warning) when no cell counts yet."""
    fig_spec = spec.figure
    xs, found = lines(spec, cells)
    if not any(counts(cell) for line in found for _, cell in line.points):
        log.warning("No figure: no cell of table %s has all its seeds complete.", spec.name)
        return []
    from matplotlib.figure import Figure  # the object API: no global state, no GUI backend

    groups = by_panel(found)
    fig = Figure(figsize=(4.5 * len(groups), 3.6), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False).ravel()
    for ax, panel in zip(axes, groups, strict=True):
        drawn = []
        for colour, line in enumerate(panel):
            points = [(x, c.mean) for x, (_, c) in zip(xs, line.points, strict=True) if counts(c)]
            if not points:
                continue
            px, py = zip(*points, strict=True)
            label = f"{key_name(fig_spec.curves)}={value_text(line.curve)}"
            ax.plot(px, py, color=f"C{colour}", marker="o", markersize=4, label=label)
            best = best_index(line, spec.better)
            ax.plot(
                xs[best],
                line.points[best][1].mean,
                color=f"C{colour}",
                marker="*",
                markersize=14,
                markeredgecolor="black",
                linestyle="none",
                zorder=3,
            )
            drawn += py
        ax.set_xscale("log", base=2)
        if limits := y_limits(drawn, spec.better):
            ax.set_ylim(*limits)
        ax.set(xlabel=fig_spec.x, ylabel=describe(spec.metric, spec.transform))
        if fig_spec.panels:
            ax.set_title(f"{fig_spec.panels}={value_text(panel[0].panel)}")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize="small")
    fig.suptitle(spec.title)
    return save_figure(fig, out_base)
