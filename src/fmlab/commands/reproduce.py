"""fmlab-reproduce table=NAME [force=true] [launch=false] [out_dir=PATH] [parallel_rows=true]
[fmlab-train overrides]: run what a table spec (conf/table/NAME.yaml) needs and is not done yet,
one ``fmlab-train -m`` sweep per row, then write the table, reference | ours | Δ | verdict, and
the learning curves of its runs. parallel_rows=true starts every row's sweep at once (for a
launcher that sends jobs elsewhere: SLURM); by default rows run one after another.

A spec may give a `grid` of override values instead of its `rows` (a row per combination), and
with `figure: {x: KEY, curves: KEY, panels: KEY}` draw it: figure.png/.pdf, the metric against x
(log2 axis), one line per curves value, one panel per panels value, each line's best starred;
its table has a row per line, a column per x value and the best x of each row.

Every other argument goes to ``fmlab-train -m`` as it is: `hydra/launcher=submitit_slurm`,
`trainer.max_epochs=1`, `paths.data_dir=...`. A second call with the same arguments launches
nothing and writes the same table.
"""

import csv
import logging
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from fmlab.errors import FmlabError
from fmlab.run import identity
from fmlab.tables.cells import Cell, aggregate, best_means, difference
from fmlab.tables.curves import plot_curves
from fmlab.tables.figure import figure_csv, figure_grid, plot_figure
from fmlab.tables.launch import check_passthrough, launch_missing, plan
from fmlab.tables.render import (
    Entry,
    Grid,
    describe,
    fmt,
    footnotes,
    markdown,
    value_entry,
    write_tables,
)
from fmlab.tables.runs import Run, load_job
from fmlab.tables.spec import TableSpec, load_spec

log = logging.getLogger("fmlab.commands.reproduce")

OPTIONS = {"table", "force", "launch", "out_dir", "parallel_rows"}
USAGE = (
    "usage: fmlab-reproduce table=NAME [force=true] [launch=false] [out_dir=PATH] "
    "[parallel_rows=true] [fmlab-train overrides ...]"
)


def parse_argv(argv: list[str]) -> tuple[dict, list[str]]:
    """Our options (typed as YAML: force=true) and the overrides that go to fmlab-train."""
    options, passthrough = {}, []
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        raise SystemExit(0)
    for arg in argv:
        if arg.startswith("-"):
            raise FmlabError(f"{arg!r}: fmlab-reproduce takes no flags. {USAGE}")
        key = arg.partition("=")[0]
        if key in OPTIONS:
            options.update(OmegaConf.to_container(OmegaConf.from_dotlist([arg])))
        else:
            passthrough.append(arg)
    if not options.get("table"):
        raise FmlabError(f"table= is required. {USAGE}")
    return options, passthrough


def check_device(spec: TableSpec, passthrough: list[str], force: bool) -> None:
    """A GPU table on a machine without one is refused, unless forced or sent to SLURM (where
    the jobs run on the cluster's nodes, not here)."""
    if spec.requires != "gpu" or force:
        return
    if any(o.startswith("hydra/launcher=") and "slurm" in o for o in passthrough):
        return
    import torch

    if not torch.cuda.is_available():
        raise FmlabError(
            f"table={spec.name} needs a GPU (its spec says requires: gpu) and this machine has "
            "none. Run it where there is one (or send it there: hydra/launcher=submitit_slurm), "
            "or add force=true to train on this machine anyway, slowly."
        )


def table_runs(jobs, out: Path) -> list[list[Run]]:
    """The runs of each row, job folders named relative to the table's folder."""
    by_row: dict = {}
    for job in jobs:
        run = load_job(job.folder)
        if job.state == "stale":
            run = Run(run.where, "stale (made with other overrides)", run.config)
        run.config.setdefault("seed", job.seed)
        run.where = os.path.relpath(job.folder, out)
        by_row.setdefault(job.row, []).append(run)
    return list(by_row.values())


def reproduction_grid(spec: TableSpec, cells: list[Cell]) -> Grid:
    best = best_means(cells, spec.better, spec.digits)
    body = []
    for i, (row, cell) in enumerate(zip(spec.rows, cells, strict=True)):
        ref = row.reference
        delta = ref.delta(cell.mean) if ref and cell.n else None
        body.append(
            [
                Entry(row.name),
                Entry(ref.text() if ref else "—"),
                value_entry(cell, spec.digits, bold=i in best),
                Entry(str(cell.n)),
                Entry(fmt(delta, spec.digits, signed=True)),
                Entry(ref.verdict(cell) if ref else "—"),
            ]
        )
    caption = (
        f"{spec.title}: {describe(spec.metric, spec.transform)}, mean ± sample std over seeds "
        f"{', '.join(map(str, spec.seeds))}; {spec.better} is better, best in bold. "
        "Δ = ours − reference (0 inside a reference range); within: |Δ| ≤ tolerance."
    )
    notes = [f"Reference: {spec.source}"] if spec.source else []
    notes += footnotes([(r.name, c) for r, c in zip(spec.rows, cells, strict=True)])
    notes += comparisons(spec, cells)
    notes += list(spec.notes)
    header = [spec.row_header, "Reference", "Ours", "n", "Δ", "Verdict"]
    return Grid(caption, header, "lrrrrl", body, notes)


def comparisons(spec: TableSpec, cells: list[Cell]) -> list[str]:
    """One line per pair the spec compares: the difference of the means and its standard error,
    and whether the first row is ahead by more than two of them."""
    by_id = {row.id: (row, cell) for row, cell in zip(spec.rows, cells, strict=True)}
    lines = []
    for first, second in spec.compare:
        (a, cell_a), (b, cell_b) = by_id[first], by_id[second]
        found = difference(cell_a, cell_b)
        if found is None:
            lines.append(f"{a.name} − {b.name}: needs two seeds or more in each.")
            continue
        delta, se = found
        ahead = delta > 2 * se if spec.better == "higher" else delta < -2 * se
        lines.append(
            f"{a.name} − {b.name}: {fmt(delta, spec.digits, signed=True)} ± "
            f"{fmt(se, spec.digits)} (standard error; {abs(delta) / se if se else float('inf'):.1f}"
            f" SE): {'ahead' if ahead else 'not ahead'} by more than two SE."
        )
    return lines


def csv_rows(spec: TableSpec, cells: list[Cell]) -> list[dict]:
    rows = []
    for row, cell in zip(spec.rows, cells, strict=True):
        ref = row.reference
        rows.append(
            {
                "table": spec.name,
                "row": row.name,
                "metric": spec.metric,
                "transform": spec.transform,
                "mean": cell.mean,
                "std": cell.std,
                "n": cell.n,
                "seeds_asked": cell.expected,
                "reference_low": ref.low if ref else None,
                "reference_high": ref.high if ref else None,
                "tolerance": ref.tolerance if ref else None,
                "delta": ref.delta(cell.mean) if ref and cell.n else None,
                "within": ref.within(cell.mean) if ref and cell.n else None,
                "left_out": "; ".join(f"seed {r.seed}: {r.status}" for r in cell.problems),
                "official_data": not cell.unofficial if cell.n else None,
            }
        )
    return rows


def keep_numbers(out: Path, cells: list[Cell], jobs) -> None:
    """A table with numbers is never replaced by one without: when no run of this call counts
    (all stale or missing: other overrides than the table was made with), refuse and say why."""
    if any(cell.n for cell in cells) or not (out / "table.csv").is_file():
        return
    with open(out / "table.csv", newline="") as f:
        if not any(row.get("n") not in (None, "", "0") for row in csv.DictReader(f)):
            return
    states = sorted({j.state for j in jobs})
    raise FmlabError(
        f"none of the {len(jobs)} runs of this table counts with these overrides (they are "
        f"{', '.join(states)}), so the table would have no numbers; {out / 'table.md'}, which "
        "has numbers, is kept. Give the overrides it was made with (listed under it), or let "
        "fmlab-reproduce launch the runs (without launch=false)."
    )


def reproduce(argv: list[str]) -> int:
    options, passthrough = parse_argv(argv)
    spec = load_spec(str(options["table"]))
    check_passthrough(passthrough)
    root = Path(os.environ.get("FMLAB_ROOT", "."))
    out = Path(options.get("out_dir") or root / "logs" / "tables" / spec.name).resolve()
    jobs = plan(spec, out / "runs", passthrough)
    todo = [j for j in jobs if j.state != "complete"]
    failed = 0
    if not todo:
        log.info("All %d runs of table %s are complete; launching nothing.", len(jobs), spec.name)
    elif not options.get("launch", True):
        log.info("launch=false: %d of %d runs are not complete.", len(todo), len(jobs))
    else:
        check_device(spec, passthrough, bool(options.get("force", False)))
        log.info("Table %s: launching %d of %d runs.", spec.name, len(todo), len(jobs))
        failed = launch_missing(jobs, out, bool(options.get("parallel_rows", False)))
        jobs = plan(spec, out / "runs", passthrough)

    runs = table_runs([j for j in jobs if j.row in spec.rows], out)  # pre-training not shown
    cells = [aggregate(r, spec.metric, spec.transform, len(spec.seeds)) for r in runs]
    keep_numbers(out, cells, jobs)
    if spec.figure:  # a grid drawn against its x: the figure, and a table of its points
        grid, lines = figure_grid(spec, cells), figure_csv(spec, cells)
        written = plot_figure(spec, cells, out / "figure")
    else:
        grid, lines, written = reproduction_grid(spec, cells), csv_rows(spec, cells), []
    if changed := identity.result_overrides(passthrough):  # made otherwise: said under it
        grid.notes.append(f"Made with the fmlab-train overrides: {' '.join(changed)}.")
    written += write_tables(out, grid, lines)
    groups = [
        (row.name, [j.folder for j in jobs if j.row == row and j.state != "stale"])
        for row in spec.rows
    ]
    written += plot_curves(groups, list(spec.curves), out / "curves", spec.title, spec.smooth)
    print(markdown(grid))
    log.info("Wrote %s", ", ".join(str(p) for p in written))
    return 1 if failed else 0


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    )
    try:
        sys.exit(reproduce(sys.argv[1:]))
    except FmlabError as err:
        log.error("%s", err)
        sys.exit(1)


if __name__ == "__main__":
    main()
