"""fmlab-table runs=[DIR,...] rows=[KEY,...] [cols=[KEY,...]] metric=test/acc [...]: the run
records under run or sweep folders (or of a W&B project: wandb=ENTITY/PROJECT) as one table,
rows and columns grouped by config keys (dotted paths into the resolved config), each cell the
mean ± sample std (n) over its seeds. Prints Markdown; out=DIR also writes table.md, table.tex,
table.csv (and curves.png/.pdf with curves=[train/loss_step,...]).

Options: transform=raw|pct|error_pct  better=higher|lower  digits=2  seeds=N (seeds asked per
cell; default: the most jobs any cell has)  task=train (null: records of every app)  title=...
wandb_filters={...} (a W&B API filter, e.g. {tags: seed})  smooth=0.9 (curve smoothing).
"""

import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmlab.errors import FmlabError
from fmlab.tables.cells import TRANSFORMS, Cell, aggregate, best_means
from fmlab.tables.curves import plot_curves
from fmlab.tables.render import (
    Entry,
    Grid,
    describe,
    footnotes,
    markdown,
    value_entry,
    write_tables,
)
from fmlab.tables.runs import Run, find_jobs, wandb_jobs

log = logging.getLogger("fmlab.commands.table")

DEFAULTS = {
    "runs": [],
    "wandb": None,
    "wandb_filters": None,
    "rows": [],
    "cols": [],
    "metric": "test/acc",
    "transform": "raw",
    "better": "higher",
    "digits": 2,
    "seeds": None,
    "task": "train",
    "title": None,
    "out": None,
    "curves": [],
    "smooth": 0.0,
}


def parse_options(argv: list[str]) -> dict:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        raise SystemExit(0)
    try:
        given = OmegaConf.to_container(OmegaConf.from_dotlist(argv))
    except OmegaConfBaseException as err:
        raise FmlabError(f"could not parse {argv}: {err}") from None
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise FmlabError(f"unknown options {sorted(unknown)}; the options are {sorted(DEFAULTS)}.")
    options = {**DEFAULTS, **given}
    for key in ("runs", "rows", "cols", "curves"):  # one value or a list
        if isinstance(options[key], str):
            options[key] = [options[key]]
    if options["transform"] not in TRANSFORMS or options["better"] not in ("higher", "lower"):
        raise FmlabError(
            f"transform must be one of {sorted(TRANSFORMS)} and better higher or lower; got "
            f"transform={options['transform']!r}, better={options['better']!r}."
        )
    return options


def _key(value):
    """A config value as a hashable, sortable group key (numbers in numeric order first)."""
    if isinstance(value, list | dict):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        value = str(value).lower()  # as YAML writes it, not as the number 1
    if isinstance(value, int | float):
        return (0, value, "")
    return (1, 0, "—" if value is None else str(value))


def varying_keys(runs: list[Run]) -> list[str]:
    """Config keys that take more than one value but repeat: candidates for rows and columns."""
    values = defaultdict(set)

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                values[f"{prefix}{k}"].add(_key(v))

    for run in runs:
        walk(run.config, "")
    return sorted(k for k, v in values.items() if 1 < len(v) < len(runs))


def shown(key: tuple) -> str:
    return key[2] if key[0] else f"{key[1]:g}"


def label(keys: list[str], group: tuple) -> str:
    return ", ".join(f"{k}={shown(v)}" for k, v in zip(keys, group, strict=True))


def row_of(run: Run, keys: list[str]) -> tuple:
    return tuple(_key(run.value(k)) for k in keys)


def build_grid(runs: list[Run], options: dict) -> tuple[Grid, list[dict]]:
    rows, cols, metric = options["rows"], options["cols"], options["metric"]
    groups = defaultdict(list)
    for run in runs:
        groups[row_of(run, rows), row_of(run, cols)].append(run)
    row_groups = sorted({r for r, _ in groups})
    col_groups = sorted({c for _, c in groups})
    expected = options["seeds"] or max(len(v) for v in groups.values())
    cells = {g: aggregate(v, metric, options["transform"], expected) for g, v in groups.items()}
    digits = options["digits"]
    bold = set()
    for c in col_groups:
        column = [(r, c) for r in row_groups if (r, c) in cells]
        picked = best_means([cells[g] for g in column], options["better"], digits)
        bold |= {column[i] for i in picked}

    body = [
        [Entry(shown(v)) for v in r]
        + [
            value_entry(cells[r, c], digits, bold=(r, c) in bold, with_n=True)
            if (r, c) in cells
            else Entry("—")
            for c in col_groups
        ]
        for r in row_groups
    ]
    header = list(rows) + [label(cols, c) if cols else metric for c in col_groups]
    caption = (
        f"{describe(metric, options['transform'])}, mean ± sample std (n seeds); "
        f"{options['better']} is better, best per column in bold."
    )
    if options["title"]:
        caption = f"{options['title']}: {caption}"
    names = {g: " / ".join(filter(None, [label(rows, g[0]), label(cols, g[1])])) for g in cells}
    notes = footnotes([(names[g], cells[g]) for g in sorted(cells)])
    grid = Grid(caption, header, "l" * len(rows) + "r" * len(col_groups), body, notes)
    return grid, [csv_row(names[g], cells[g], metric) for g in sorted(cells)]


def csv_row(name: str, cell: Cell, metric: str) -> dict:
    return {
        "group": name,
        "metric": metric,
        "mean": cell.mean,
        "std": cell.std,
        "n": cell.n,
        "seeds_asked": cell.expected,
        "left_out": "; ".join(f"seed {r.seed}: {r.status} ({r.where})" for r in cell.problems),
        "official_data": not cell.unofficial if cell.n else None,
    }


def collect(options: dict) -> list[Run]:
    runs = find_jobs(options["runs"], options["task"]) if options["runs"] else []
    if options["wandb"]:
        runs += wandb_jobs(options["wandb"], options["wandb_filters"])
    if not options["runs"] and not options["wandb"]:
        raise FmlabError("give runs=[DIR,...] (run or sweep folders) or wandb=ENTITY/PROJECT.")
    if not runs:
        raise FmlabError(f"no run records found in runs={options['runs']}.")
    if not options["rows"]:
        raise FmlabError(
            "rows=[KEY,...] is required: the config keys that make the rows. Keys that vary "
            f"among these {len(runs)} runs: {', '.join(varying_keys(runs)) or 'none'}."
        )
    return runs


def curves(runs: list[Run], options: dict, out_base: Path) -> list[Path]:
    """Learning curves, one colour per row, from the jobs' CSV logs (W&B runs have none here)."""
    groups = defaultdict(list)
    for run in runs:
        if Path(run.where).is_dir():
            groups[row_of(run, options["rows"])].append(Path(run.where))
    labelled = [(label(options["rows"], g), jobs) for g, jobs in sorted(groups.items())]
    title = options["title"] or ""
    return plot_curves(labelled, options["curves"], out_base, title, options["smooth"])


def table(argv: list[str]) -> str:
    options = parse_options(argv)
    runs = collect(options)
    grid, rows = build_grid(runs, options)
    text = markdown(grid)
    if options["out"]:
        out = Path(options["out"])
        written = write_tables(out, grid, rows)
        if options["curves"]:
            written += curves(runs, options, out / "curves")
        log.info("Wrote %s", ", ".join(map(str, written)))
    return text


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(name)s][%(levelname)s] - %(message)s")
    try:
        print(table(sys.argv[1:]))
    except FmlabError as err:
        log.error("%s", err)
        sys.exit(1)


if __name__ == "__main__":
    main()
