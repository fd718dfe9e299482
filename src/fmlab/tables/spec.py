"""Table specs, conf/table/NAME.yaml: the runs a paper table needs, the metric, and the published
numbers to hold ours against. Checked here key by key, so a typo is an error that names it.

A spec lists its ``rows``, or gives a ``grid`` of override values whose every combination is a row
(a learning-rate sweep over widths, as in the μTransfer figure of Yang et al. 2022); a grid spec
may draw its metric as a ``figure`` against one grid key, instead of the reproduction table."""

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmlab import CONF_DIR
from fmlab.errors import FmlabError
from fmlab.tables.cells import TRANSFORMS, Reference

# The spec's keys. `rows` (each a name, id, overrides, reference) or `grid` (override key: list of
# values; the rows are their cartesian product, the last key varying fastest); `figure` (x, curves,
# panels: grid keys) only with `grid`; `compare` only with `rows`; `curves` (learning curves) by
# default the training loss and the metric's validation twin, none for a grid.
KEYS = {
    "title",
    "requires",
    "metric",
    "transform",
    "better",
    "digits",
    "seeds",
    "overrides",
    "row_header",
    "reference",
    "rows",
    "notes",
    "curves",
    "smooth",
    "pretrain",
    "compare",
    "grid",
    "figure",
}
ROW_KEYS = {"name", "id", "overrides", "reference"}
FIGURE_KEYS = {"x", "curves", "panels"}


@dataclass(frozen=True)
class Row:
    name: str
    id: str  # names the row's run folder: runs/<id>/seed_<seed>
    overrides: tuple[str, ...]
    reference: Reference | None
    point: tuple[tuple[str, object], ...] = ()  # a grid row's (key, value) pairs, in grid order


@dataclass(frozen=True)
class FigureSpec:
    """The metric against grid key ``x`` (log2 axis), one line per value of ``curves``, one panel
    per value of ``panels`` (None: one panel)."""

    x: str
    curves: str
    panels: str | None


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    requires: str  # "cpu" or "gpu"
    metric: str
    transform: str
    better: str  # "higher" or "lower", of the printed value
    digits: int
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]  # given to every run
    row_header: str
    source: str | None  # where the reference numbers come from
    rows: tuple[Row, ...]
    pretrain: tuple[Row, ...]  # runs that rows start from (init_from={runs}/<id>/...), not shown
    compare: tuple[tuple[str, str], ...]  # (row id, row id): the first minus the second, with SE
    notes: tuple[str, ...]
    curves: tuple[str, ...]  # logged metrics drawn as learning curves
    smooth: float  # exponential smoothing of the curves, 0 ≤ smooth < 1
    grid: tuple[tuple[str, tuple], ...] = ()  # (override key, its values), as the spec wrote them
    figure: FigureSpec | None = None  # draw the grid as a figure instead of the reproduction table


def spec_path(table: str) -> Path:
    """``table`` is a spec's name (conf/table/NAME.yaml) or the path of a YAML file."""
    if table.endswith((".yaml", ".yml")):
        path = Path(table).expanduser()
    else:
        path = Path(CONF_DIR, "table", f"{table}.yaml")
    if not path.is_file():
        names = sorted(p.stem for p in Path(CONF_DIR, "table").glob("*.yaml"))
        raise FmlabError(
            f"table={table!r}: no spec at {path}. Shipped tables: {', '.join(names)}; "
            "or pass the path of a spec file (table=path/to/spec.yaml)."
        )
    return path


def load_spec(table: str) -> TableSpec:
    path = spec_path(table)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OmegaConfBaseException, yaml.YAMLError) as err:  # YAML syntax errors are yaml's own
        raise FmlabError(
            f"table spec {path} does not parse: {' '.join(str(err).split())}. Fix the YAML there."
        ) from None
    return parse_spec(path.stem, raw, where=str(path))


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise FmlabError(f"table spec {where}: {message}")


def _strings(value, where: str, key: str) -> tuple[str, ...]:
    value = value or []
    _check(
        isinstance(value, list) and all(isinstance(v, str) for v in value),
        where,
        f"`{key}` must be a list of strings, got {value!r}.",
    )
    return tuple(value)


def parse_spec(name: str, raw: dict, where: str = "<spec>") -> TableSpec:
    _check(isinstance(raw, dict), where, "must be a mapping of keys to values.")
    unknown = set(raw) - KEYS
    _check(not unknown, where, f"unknown keys {sorted(unknown)}; the keys are {sorted(KEYS)}.")
    for key in ("title", "metric", "better", "seeds"):
        _check(key in raw, where, f"`{key}` is required.")
    transform = raw.get("transform", "raw")
    _check(transform in TRANSFORMS, where, f"`transform` must be one of {sorted(TRANSFORMS)}.")
    _check(raw["better"] in ("higher", "lower"), where, "`better` must be higher or lower.")
    requires = raw.get("requires", "cpu")
    _check(requires in ("cpu", "gpu"), where, "`requires` must be cpu or gpu.")
    seeds = raw["seeds"]
    _check(
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) for s in seeds)
        and len(set(seeds)) == len(seeds),
        where,
        f"`seeds` must be a non-empty list of distinct integers, got {seeds!r}.",
    )
    overrides = _strings(raw.get("overrides"), where, "overrides")
    reference = raw.get("reference") or {}
    _check(
        isinstance(reference, dict) and set(reference) <= {"source", "tolerance"},
        where,
        "`reference` takes `source` (citation) and `tolerance` (default for every row).",
    )
    grid, rows = _table_rows(raw, reference.get("tolerance"), where)
    pretrain = tuple(_row(r, i, None, where) for i, r in enumerate(raw.get("pretrain") or []))
    ids = [r.id for r in pretrain + rows]
    _check(len(set(ids)) == len(ids), where, f"row ids must be distinct, got {ids}.")
    for row in pretrain + rows:
        _check(
            not any(o.split("=")[0].lstrip("+~") == "seed" for o in overrides + row.overrides),
            where,
            f"row {row.name!r}: seeds come from `seeds`, not from an override.",
        )
    compare = raw.get("compare") or []
    _check(
        not (grid and compare),
        where,
        "`compare` names rows by id, and a grid's ids are generated: compare listed `rows`.",
    )
    _check(
        isinstance(compare, list)
        and all(
            isinstance(p, list) and len(p) == 2 and set(p) <= {r.id for r in rows} for p in compare
        ),
        where,
        f"`compare` is a list of [row id, row id] pairs of the rows' ids {[r.id for r in rows]}, "
        f"got {compare!r}.",
    )
    metric = raw["metric"]
    # A grid has many rows: one colour each in the learning curves would be unreadable.
    default_curves = [] if grid else ["train/loss_step", re.sub(r"^test/", "val/", metric)]
    smooth = raw.get("smooth", 0.0)
    _check(isinstance(smooth, int | float) and 0 <= smooth < 1, where, "`smooth` is in [0, 1).")
    return TableSpec(
        name=name,
        title=str(raw["title"]),
        requires=requires,
        metric=metric,
        transform=transform,
        better=raw["better"],
        digits=int(raw.get("digits", 2)),
        seeds=tuple(seeds),
        overrides=overrides,
        row_header=str(raw.get("row_header", "Configuration")),
        source=reference.get("source"),
        rows=rows,
        pretrain=pretrain,
        compare=tuple(tuple(p) for p in compare),
        notes=_strings(raw.get("notes"), where, "notes"),
        curves=_strings(raw.get("curves", default_curves), where, "curves"),
        smooth=float(smooth),
        grid=grid,
        figure=_figure(raw.get("figure"), grid, where),
    )


def _table_rows(raw: dict, tolerance, where: str) -> tuple[tuple, tuple[Row, ...]]:
    """The grid (empty without one) and the table's rows: as listed, or one per combination of the
    grid's values."""
    _check(
        ("rows" in raw) != ("grid" in raw),
        where,
        "give `rows` (the rows one by one) or `grid` (every combination of its values), "
        + ("not both." if "rows" in raw else "one of them."),
    )
    if "grid" in raw:
        grid = _grid(raw["grid"], where)
        return grid, _grid_rows(grid, where)
    rows = tuple(_row(r, i, tolerance, where) for i, r in enumerate(raw["rows"] or []))
    _check(bool(rows), where, "`rows` must list at least one row.")
    return (), rows


def value_text(value) -> str:
    """A grid value as people read it: numbers with ``:g``, booleans as YAML writes them."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def key_name(key: str) -> str:
    """An override key as rows and legends name it: its last dotted part (``lr``)."""
    return key.lstrip("+~").rsplit(".", 1)[-1]


def _grid(raw, where: str) -> tuple[tuple[str, tuple], ...]:
    _check(
        isinstance(raw, dict) and bool(raw),
        where,
        f"`grid` maps override keys to lists of values, got {raw!r}.",
    )
    for key, values in raw.items():
        _check(
            isinstance(values, list)
            and bool(values)
            and all(isinstance(v, str | int | float | bool) for v in values),
            where,
            f"grid key {key!r} needs a non-empty list of numbers, strings or booleans, "
            f"got {values!r}.",
        )
        _check(
            len(set(values)) == len(values), where, f"grid key {key!r} repeats a value: {values}."
        )
    return tuple((str(key), tuple(values)) for key, values in raw.items())


def _override(key: str, value, where: str) -> str:
    """``key=value``, the value written so that Hydra parses it back to the same value: floats by
    repr (0.00390625, not 0.0039), strings quoted where bare text would parse as something else."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    parser = OverridesParser.create()
    for candidate in (text, "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"):
        try:
            parsed = parser.parse_overrides([f"{key}={candidate}"])[0]
        except HydraException:
            continue
        got = parsed.value()
        if not parsed.is_sweep_override() and type(got) is type(value) and got == value:
            return f"{key}={candidate}"
    raise FmlabError(f"table spec {where}: grid key {key!r}: {key}={text} is not a Hydra override.")


def _grid_rows(grid: tuple[tuple[str, tuple], ...], where: str) -> tuple[Row, ...]:
    """One row per combination of the grid's values, the last key varying fastest. Its name uses
    the keys' last parts (``lr=0.0039``); its id the exact values (``lr-0.00390625``)."""
    keys = [key for key, _ in grid]
    short = [key_name(key) for key in keys]
    rows = []
    for values in itertools.product(*(values for _, values in grid)):
        name = ", ".join(f"{k}={value_text(v)}" for k, v in zip(short, values, strict=True))
        overrides = tuple(_override(k, v, where) for k, v in zip(keys, values, strict=True))
        exact = [o.partition("=")[2] for o in overrides]  # quotes kept (as _): 'true' ≠ true
        row_id = "_".join(f"{k}-{v}" for k, v in zip(short, exact, strict=True))
        row_id = re.sub(r"[^A-Za-z0-9._-]", "_", row_id)
        rows.append(Row(name, row_id, overrides, None, tuple(zip(keys, values, strict=True))))
    return tuple(rows)


def _figure(raw, grid: tuple[tuple[str, tuple], ...], where: str) -> FigureSpec | None:
    if raw is None:
        return None
    _check(bool(grid), where, "`figure` draws a `grid`: give the grid it draws.")
    _check(
        isinstance(raw, dict) and "x" in raw and "curves" in raw and set(raw) <= FIGURE_KEYS,
        where,
        f"`figure` takes `x`, `curves` and optionally `panels` (grid keys), got {raw!r}.",
    )
    values = dict(grid)
    chosen = [raw["x"], raw["curves"]] + ([raw["panels"]] if raw.get("panels") else [])
    for role, key in zip(("x", "curves", "panels"), chosen, strict=False):
        _check(
            isinstance(key, str) and key in values,
            where,
            f"figure {role} {key!r} is not a grid key; the grid keys are {list(values)}.",
        )
    _check(
        len(set(chosen)) == len(chosen), where, f"figure x, curves, panels repeat a key: {chosen}."
    )
    missing = [key for key in values if key not in chosen]
    _check(
        not missing,
        where,
        f"grid key {', '.join(map(repr, missing))} is neither the figure's x, curves nor panels, "
        "so a point would stand for several runs: make it the `panels`, or give it one value in "
        "`overrides` instead.",
    )
    _check(
        all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0
            for v in values[raw["x"]]
        ),
        where,
        f"figure x {raw['x']!r} is drawn on a log2 axis: its values must be numbers > 0, got "
        f"{list(values[raw['x']])}.",
    )
    return FigureSpec(raw["x"], raw["curves"], raw.get("panels"))


def _row(raw, index: int, tolerance, where: str) -> Row:
    _check(isinstance(raw, dict) and "name" in raw, where, f"row {index} needs a `name`.")
    unknown = set(raw) - ROW_KEYS
    _check(not unknown, where, f"row {raw['name']!r}: unknown keys {sorted(unknown)}.")
    name = str(raw["name"])
    row_id = str(raw.get("id") or re.sub(r"[^a-z0-9.]+", "_", name.lower()).strip("_"))
    _check(
        re.fullmatch(r"[A-Za-z0-9._-]+", row_id) is not None,
        where,
        f"row {name!r}: id {row_id!r} may hold only letters, digits, '.', '_' and '-'.",
    )
    overrides = _strings(raw.get("overrides"), where, f"rows[{index}].overrides")
    return Row(name, row_id, overrides, _reference(raw.get("reference"), tolerance, name, where))


def _reference(raw, tolerance, row: str, where: str) -> Reference | None:
    """A number, a [low, high] range, or {value: either, tolerance: ...}; None: no reference."""
    if raw is None:
        return None
    if isinstance(raw, dict):
        tolerance = raw.get("tolerance", tolerance)
        raw = raw.get("value")
    low_high = raw if isinstance(raw, list) else [raw, raw]
    number = (int, float)
    _check(
        len(low_high) == 2 and all(isinstance(v, number) for v in low_high),
        where,
        f"row {row!r}: reference must be a number or [low, high], got {raw!r}.",
    )
    _check(
        isinstance(tolerance, number) and tolerance >= 0,
        where,
        f"row {row!r}: a reference needs a tolerance ≥ 0 (in the row or in `reference`).",
    )
    low, high = sorted(float(v) for v in low_high)
    return Reference(low, high, float(tolerance))
