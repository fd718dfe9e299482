"""Table specs, conf/table/NAME.yaml: the runs a paper table needs, the metric, and the published
numbers to hold ours against. Checked here key by key, so a typo is an error that names it."""

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmlab import CONF_DIR
from fmlab.errors import FmlabError
from fmlab.tables.cells import TRANSFORMS, Reference

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
}
ROW_KEYS = {"name", "id", "overrides", "reference"}


@dataclass(frozen=True)
class Row:
    name: str
    id: str  # names the row's run folder: runs/<id>/seed_<seed>
    overrides: tuple[str, ...]
    reference: Reference | None


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
    for key in ("title", "metric", "better", "seeds", "rows"):
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
    rows = tuple(
        _row(r, i, reference.get("tolerance"), where) for i, r in enumerate(raw["rows"] or [])
    )
    _check(bool(rows), where, "`rows` must list at least one row.")
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
        isinstance(compare, list)
        and all(
            isinstance(p, list) and len(p) == 2 and set(p) <= {r.id for r in rows} for p in compare
        ),
        where,
        f"`compare` is a list of [row id, row id] pairs of the rows' ids {[r.id for r in rows]}, "
        f"got {compare!r}.",
    )
    metric = raw["metric"]
    default_curves = ["train/loss_step", re.sub(r"^test/", "val/", metric)]
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
    )


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
