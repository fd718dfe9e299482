"""Grid specs: a row per combination of override values, refused by name when wrong; and the
figure fmlab-reproduce draws of one, with its table, from run folders as fmlab-train leaves them."""

import csv

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from fmlab.commands.reproduce import reproduce
from fmlab.errors import FmlabError
from fmlab.run.record import write_json_atomic
from fmlab.tables.figure import y_limits
from fmlab.tables.launch import plan
from fmlab.tables.spec import parse_spec

MUP = {
    "title": "μTransfer",
    "metric": "val/loss",
    "better": "lower",
    "seeds": [1, 2],
    "overrides": ["experiment=x"],
    "grid": {
        "model.parametrization": ["sp", "mup"],
        "model.n_embd": [32, 64],
        "optimizer.lr": [0.0078125, 0.015625, 0.03125],
    },
    "figure": {
        "x": "optimizer.lr",
        "curves": "model.n_embd",
        "panels": "model.parametrization",
    },
}


def test_a_grid_is_one_row_per_combination_last_key_fastest():
    grid = {
        "+model.flag": [True, "true"],  # a bool and the string that reads like one
        "optimizer.lr": [1e-05, 0.00390625, 0.0039062501],  # :g prints the last two alike
        "model.n_embd": [32],
    }
    spec = parse_spec("g", {**MUP, "grid": grid, "figure": None})
    assert [r.name for r in spec.rows] == [
        "flag=true, lr=1e-05, n_embd=32",
        "flag=true, lr=0.00390625, n_embd=32",
        "flag=true, lr=0.00390625, n_embd=32",
        "flag=true, lr=1e-05, n_embd=32",
        "flag=true, lr=0.00390625, n_embd=32",
        "flag=true, lr=0.00390625, n_embd=32",
    ]
    assert [r.id for r in spec.rows] == [
        "flag-true_lr-1e-05_n_embd-32",
        "flag-true_lr-0.00390625_n_embd-32",
        "flag-true_lr-0.0039062501_n_embd-32",
        "flag-_true__lr-1e-05_n_embd-32",
        "flag-_true__lr-0.00390625_n_embd-32",
        "flag-_true__lr-0.0039062501_n_embd-32",
    ]
    assert len({r.id for r in spec.rows}) == 6
    assert all(r.reference is None for r in spec.rows) and spec.curves == ()
    parser = OverridesParser.create()
    for row in spec.rows:
        parsed = parser.parse_overrides(list(row.overrides))
        assert [(o.input_line.partition("=")[0], o.value()) for o in parsed] == list(row.point)
        assert [type(o.value()) for o in parsed] == [type(v) for _, v in row.point]
    assert spec.rows[3].overrides == ("+model.flag='true'", "optimizer.lr=1e-05", "model.n_embd=32")
    assert spec.grid == tuple((k, tuple(v)) for k, v in grid.items())


def test_listed_curves_are_drawn_for_a_grid_too():
    assert parse_spec("g", {**MUP, "curves": ["val/loss"]}).curves == ("val/loss",)


def without(key: str) -> dict:
    return {k: v for k, v in MUP.items() if k != key}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**MUP, "rows": [{"name": "a"}]}, "give `rows` .* or `grid` .*, not both"),
        (without("grid") | {"figure": None}, "give `rows` .* or `grid` .*, one of them"),
        (
            without("grid") | {"rows": [{"name": "a"}]},
            r"`figure` draws a `grid`: give the grid it draws",
        ),
        (
            {**MUP, "figure": {**MUP["figure"], "x": "optimizer.wd"}},
            r"figure x 'optimizer.wd' is not a grid key; the grid keys are",
        ),
        (
            {**MUP, "figure": {"x": "optimizer.lr", "curves": "model.n_embd"}},
            r"grid key 'model.parametrization' is neither the figure's x, curves nor panels",
        ),
        (
            {**MUP, "figure": {**MUP["figure"], "panels": "model.n_embd"}},
            r"figure x, curves, panels repeat a key",
        ),
        (
            {**MUP, "figure": {**MUP["figure"], "colour": "red"}},
            r"`figure` takes `x`, `curves` and optionally `panels`",
        ),
        (
            {**MUP, "grid": {**MUP["grid"], "optimizer.lr": [0.1, 0.0]}},
            r"figure x 'optimizer.lr' is drawn on a log2 axis: its values must be numbers > 0",
        ),
        ({**MUP, "compare": [["a", "b"]]}, r"`compare` names rows by id, and a grid's ids"),
        (
            {**MUP, "grid": {**MUP["grid"], "model.n_embd": []}},
            r"grid key 'model.n_embd' needs a non-empty list",
        ),
        (
            {**MUP, "grid": {**MUP["grid"], "model.n_embd": [[32, 64]]}},
            r"grid key 'model.n_embd' needs a non-empty list of numbers, strings or booleans",
        ),
        (
            {**MUP, "grid": {**MUP["grid"], "model.n_embd": [32, 32]}},
            r"grid key 'model.n_embd' repeats a value",
        ),
        ({**MUP, "grid": []}, r"`grid` maps override keys to lists of values"),
        (
            {**MUP, "grid": {"model n_embd": [1]}, "figure": None},
            r"grid key 'model n_embd': model n_embd=1 is not a Hydra override",
        ),
        (
            {**MUP, "grid": {"seed": [1, 2]}, "figure": None},
            "row 'seed=1': seeds come from `seeds`",
        ),
    ],
)
def test_a_wrong_grid_is_refused_by_name(spec, message):
    with pytest.raises(FmlabError, match=f"table spec <spec>: {message}"):
        parse_spec("t", spec)


# ---- the figure and its table, from run folders -------------------------------------------------

# Mean val/loss per (parametrization, n_embd) at lr 2^-7, 2^-6, 2^-5. SP's optimum moves down a
# step from width 32 to 64, and its widest run at the largest lr diverged (4.0, complete all the
# same); μP's stays put. μP 64 at 2^-5 would be the best of its line, but one of its seeds failed:
# an incomplete cell is left out of the figure and of the optimum.
LOSSES = {
    ("sp", 32): [1.6, 1.5, 1.7],
    ("sp", 64): [1.45, 1.55, 4.0],
    ("mup", 32): [1.7, 1.5, 1.6],
    ("mup", 64): [1.6, 1.4, 1.0],
}


def write_runs(out):
    """Every job's folder as fmlab-train -m leaves it: the overrides it was made with, and
    results.json (seed 2 of the failed job: status failed, no metrics; two cells made on a copy
    of the data that is not the official release)."""
    spec = parse_spec("mup", MUP)
    for job in plan(spec, out / "runs", []):
        point = dict(job.row.point)
        p, n, lr = point["model.parametrization"], point["model.n_embd"], point["optimizer.lr"]
        mean = LOSSES[p, n][[0.0078125, 0.015625, 0.03125].index(lr)]
        (job.folder / ".hydra").mkdir(parents=True)
        (job.folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(job.overrides))
        failed = (p, n, lr, job.seed) == ("mup", 64, 0.03125, 2)
        record = {
            "status": "failed" if failed else "complete",
            "metrics": {} if failed else {"val/loss": mean + (0.01 if job.seed == 2 else -0.01)},
            "config": {"seed": job.seed, "optimizer": {"lr": lr}},
            "data": {"official": (p, n) != ("mup", 32) or lr == 0.03125},
        }
        write_json_atomic(job.folder / "results.json", record)


def test_the_figure_table_from_run_folders(tmp_path):
    spec_path = tmp_path / "mup.yaml"
    spec_path.write_text(yaml.safe_dump(MUP, allow_unicode=True, sort_keys=False))
    out = tmp_path / "mup"
    write_runs(out)
    args = [f"table={spec_path}", f"out_dir={out}", "launch=false"]
    assert reproduce(args) == 0
    table = (out / "table.md").read_text()
    assert (
        "| parametrization | n_embd | lr=0.0078125 | lr=0.015625 | lr=0.03125 | best lr |" in table
    )
    assert "| sp | 32 | 1.60 ± 0.01 | **1.50 ± 0.01** | 1.70 ± 0.01 | 0.015625 |" in table
    assert "| sp | 64 | **1.45 ± 0.01** | 1.55 ± 0.01 | 4.00 ± 0.01 | 0.0078125 |" in table
    assert "| mup | 32 | 1.70 ± 0.01 § | **1.50 ± 0.01** § | 1.60 ± 0.01 | 0.015625 |" in table
    assert "| mup | 64 | 1.60 ± 0.01 | **1.40 ± 0.01** | 0.99 †‡ | 0.015625 |" in table
    body = [line for line in table.splitlines() if line.startswith("| ")]
    assert [line.count("**") for line in body] == [0, 0, 2, 2, 2, 2]  # one bold cell per row
    assert (
        "parametrization=sp: best lr 0.015625 at n_embd=32, 0.0078125 at 64; from n_embd=32 to "
        "n_embd=64 the optimum moves 1 grid step down (a factor of 0.5)."
    ) in table
    assert (
        "parametrization=mup: best lr 0.015625 at n_embd=32, 0.015625 at 64; from n_embd=32 to "
        "n_embd=64 the optimum moves 0 grid steps (a factor of 1)."
    ) in table
    # Wider no worse: SP's wider line is better only at 2^-7 (1.45 against 1.6); μP's at both lrs
    # whose cells are complete (its incomplete one at 2^-5 is left out).
    assert (
        "parametrization=sp: each larger n_embd no worse than the one before at lr 0.0078125; "
        "not at 0.015625, 0.03125."
    ) in table
    assert (
        "parametrization=mup: each larger n_embd no worse than the one before at every lr with "
        "complete cells (0.0078125, 0.015625)."
    ) in table
    assert (
        "† Jobs left out of the mean: parametrization=mup, n_embd=64, lr=0.03125, seed 2: failed "
        "(runs/parametrization-mup_n_embd-64_lr-0.03125/seed_2)."
    ) in table
    assert table.endswith(  # labels hold commas: the footnotes separate them by semicolons
        "fingerprint): parametrization=mup, n_embd=32, lr=0.0078125; parametrization=mup, "
        "n_embd=32, lr=0.015625.\n"
    )
    tex = (out / "table.tex").read_text()
    assert tex.count(r"\textbf{") == 4 and "moves 1 grid step down" in tex
    with open(out / "table.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 12 and list(lines[0]) == [
        "table", "panel", "curve", "x", "mean", "std", "n", "seeds_asked", "left_out"
    ]  # fmt: skip
    assert lines[-1] | {"mean": None, "std": None} == {
        "table": "mup", "panel": "mup", "curve": "64", "x": "0.03125", "mean": None, "std": None,
        "n": "1", "seeds_asked": "2", "left_out": "seed 2: failed",
    }  # fmt: skip
    assert not (out / "curves.png").exists()  # a grid draws no learning curves unless asked
    png, pdf = out / "figure.png", out / "figure.pdf"
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    drawn = pdf.read_bytes()

    # The same runs, the same files; other overrides with nothing run: the numbers are kept.
    assert reproduce(args) == 0 and pdf.read_bytes() == drawn
    with pytest.raises(FmlabError, match="which has numbers, is kept"):
        reproduce([*args, "trainer.max_epochs=2"])
    assert pdf.read_bytes() == drawn and "1.50 ± 0.01" in (out / "table.md").read_text()


def test_a_diverged_point_does_not_squash_the_rest():
    sp = [1.6, 1.5, 1.7, 1.45, 1.55, 4.0]
    low, high = y_limits(sp, "lower")
    assert low < 1.45 and 1.7 < high < 2.5  # the valleys fill the axes; 4.0 leaves them
    low, high = y_limits([60.0, 62.0, 61.0, 10.0], "higher")  # a run at chance accuracy
    assert 10.0 < low < 60.0 and high > 62.0
    assert y_limits([1.6, 1.5, 1.7, float("nan")], "lower") is None  # nothing to clip
    assert y_limits([1.5, 1.5, 1.5], "lower") is None
