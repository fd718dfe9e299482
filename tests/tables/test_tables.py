"""Tables from hand-made run records: the arithmetic, the three formats, fmlab-table's CLI."""

import json
import math
import re
from pathlib import Path

import pytest
from conftest import run_cli

from fmlab import CONF_DIR
from fmlab.commands.reproduce import csv_rows, reproduction_grid
from fmlab.errors import FmlabError
from fmlab.run.record import write_json_atomic
from fmlab.tables.cells import Reference, aggregate, best_means
from fmlab.tables.curves import plot_curves, read_series, smoothed
from fmlab.tables.render import latex, markdown
from fmlab.tables.runs import Run, find_jobs, run_from_wandb, wandb_jobs
from fmlab.tables.spec import load_spec, parse_spec


def run(seed, acc=None, status="complete", official=True, where=None):
    metrics = {} if acc is None else {"test/acc": acc}
    return Run(where or f"job{seed}", status, {"seed": seed}, metrics, official)


def test_mean_sample_std_and_n():
    cell = aggregate([run(1, 0.5), run(2, 0.6), run(3, 0.7)], "test/acc", "pct", expected=3)
    assert (cell.n, cell.mean) == (3, pytest.approx(60.0))
    assert cell.std == pytest.approx(10.0)  # sample std: sqrt(((−10)² + 0² + 10²) / (3 − 1))
    assert cell.marks == "" and not cell.short and not cell.problems


def test_error_transform_and_one_seed_has_no_std():
    cell = aggregate([run(1, 0.9125)], "test/acc", "error_pct")
    assert cell.mean == pytest.approx(8.75) and cell.std is None and cell.n == 1
    empty = aggregate([], "test/acc")
    assert (empty.n, empty.mean, empty.std) == (0, None, None)


def test_failed_missing_and_unofficial_runs_are_marked():
    runs = [
        run(1, 0.40),
        run(2, 0.44, official=False),
        run(3, status="unfinished"),  # folder without results.json: failed or still running
        run(4, status="missing"),  # never launched: only makes the cell short
        run(5),  # complete, but never logged the metric
    ]
    cell = aggregate(runs, "test/acc", "raw", expected=5)
    assert cell.n == 2 and cell.mean == pytest.approx(0.42)
    assert cell.std == pytest.approx(math.sqrt(2) * 0.02)
    assert [(r.seed, r.status) for r in cell.problems] == [
        (3, "unfinished"),
        (5, "did not log test/acc"),
    ]
    assert cell.short and [r.seed for r in cell.unofficial] == [2]
    assert cell.marks == "†‡§"


def test_best_is_by_printed_value_and_direction():
    cells = [aggregate([run(1, v)], "test/acc") for v in (0.501, 0.499, 0.3)]
    cells.append(aggregate([], "test/acc"))  # no value: never best
    assert best_means(cells, "higher", digits=2) == {0, 1}  # both print 0.50
    assert best_means(cells, "higher", digits=3) == {0}
    assert best_means(cells, "lower", digits=2) == {2}


def test_reference_range_delta_and_verdict():
    ref = Reference(53.0, 56.0, tolerance=2.0)
    assert ref.text() == "53–56" and Reference(8.75, 8.75, 0.5).text() == "8.75"
    assert ref.delta(55.0) == 0.0 and ref.delta(52.0) == -1.0 and ref.delta(57.5) == 1.5
    assert ref.within(51.0) and not ref.within(50.9) and not ref.within(58.1)
    assert ref.verdict(aggregate([run(1, 0.50)], "test/acc", "pct")) == "✗ outside ±2"
    assert ref.verdict(aggregate([run(1, 0.54)], "test/acc", "pct")) == "✓ within ±2"
    assert ref.verdict(aggregate([], "test/acc")) == "not run"


SPEC = {
    "title": "Toy",
    "metric": "test/acc",
    "transform": "pct",
    "better": "higher",
    "digits": 1,
    "seeds": [1, 2, 3],
    "row_header": "Model",
    "reference": {"source": "A paper, Table 1", "tolerance": 2},
    "rows": [
        {"name": "Net_A", "overrides": ["experiment=a"], "reference": [53, 56]},
        {"name": "Net B", "id": "b", "overrides": ["experiment=b"], "reference": 60},
        {"name": "Net C", "id": "c", "overrides": ["experiment=c"]},
    ],
}


def toy_cells():
    spec = parse_spec("toy", SPEC)
    runs = [
        [run(1, 0.50), run(2, 0.52), run(3, 0.54)],
        [
            run(1, 0.60),
            run(2, status="unfinished", where="runs/b/seed_2"),
            run(3, status="missing"),
        ],
        [run(1, 0.70, official=False), run(2, 0.80, official=False), run(3, where="runs/c/seed_3")],
    ]
    return spec, [aggregate(r, spec.metric, spec.transform, len(spec.seeds)) for r in runs]


EXPECTED_MARKDOWN = """\
**Toy: test/acc (%), mean ± sample std over seeds 1, 2, 3; higher is better, best in bold. \
Δ = ours − reference (0 inside a reference range); within: |Δ| ≤ tolerance.**

| Model | Reference | Ours | n | Δ | Verdict |
| :-- | --: | --: | --: | --: | :-- |
| Net_A | 53–56 | 52.0 ± 2.0 | 3 | −1.0 | ✓ within ±2 |
| Net B | 60 | 60.0 †‡ | 1 | +0.0 | ✓ within ±2 |
| Net C | — | **75.0 ± 7.1** †‡§ | 2 | — | — |

Reference: A paper, Table 1

† Jobs left out of the mean: Net B, seed 2: unfinished (runs/b/seed_2); Net C, seed 3: did not \
log test/acc (runs/c/seed_3).

‡ Fewer seeds than asked: Net B (1 of 3); Net C (2 of 3).

§ Not the official data release (the run records say official: false and give the copy's \
fingerprint): Net C.
"""

EXPECTED_LATEX = r"""% Needs \usepackage{booktabs} (and amssymb for \checkmark).
\begin{table}[t]
\centering
\caption{Toy: test/acc (\%), mean $\pm$ sample std over seeds 1, 2, 3; higher is better, best in bold. $\Delta$ = ours $-$ reference (0 inside a reference range); within: \textbar{}$\Delta$\textbar{} $\leq$ tolerance.}
\begin{tabular}{lrrrrl}
\toprule
Model & Reference & Ours & n & $\Delta$ & Verdict \\
\midrule
Net\_A & 53--56 & 52.0 $\pm$ 2.0 & 3 & $-$1.0 & \checkmark within $\pm$2 \\
Net B & 60 & 60.0\textsuperscript{\dag}\textsuperscript{\ddag} & 1 & +0.0 & \checkmark within $\pm$2 \\
Net C & --- & \textbf{75.0 $\pm$ 7.1}\textsuperscript{\dag}\textsuperscript{\ddag}\textsuperscript{\S} & 2 & --- & --- \\
\bottomrule
\end{tabular}
\par\smallskip{\footnotesize
Reference: A paper, Table 1 \\
\textsuperscript{\dag} Jobs left out of the mean: Net B, seed 2: unfinished (runs/b/seed\_2); Net C, seed 3: did not log test/acc (runs/c/seed\_3). \\
\textsuperscript{\ddag} Fewer seeds than asked: Net B (1 of 3); Net C (2 of 3). \\
\textsuperscript{\S} Not the official data release (the run records say official: false and give the copy's fingerprint): Net C.}
\end{table}
"""  # noqa: E501


def test_markdown_output_is_exactly_this():
    spec, cells = toy_cells()
    assert markdown(reproduction_grid(spec, cells)) == EXPECTED_MARKDOWN


def test_latex_output_is_exactly_this():
    spec, cells = toy_cells()
    assert latex(reproduction_grid(spec, cells)) == EXPECTED_LATEX


def test_csv_holds_full_precision_and_verdicts():
    spec, cells = toy_cells()
    rows = csv_rows(spec, cells)
    assert [r["n"] for r in rows] == [3, 1, 2]
    assert rows[0]["mean"] == pytest.approx(52.0) and rows[0]["within"] is True
    assert rows[1]["left_out"] == "seed 2: unfinished"
    assert rows[2]["reference_low"] is None and rows[2]["official_data"] is False


@pytest.mark.parametrize("table", sorted(p.stem for p in Path(CONF_DIR, "table").glob("*.yaml")))
def test_a_shipped_table_says_its_data_is_unofficial_once_and_only_when_so(table):
    """A spec's notes print on every machine; the § footnote alone speaks of this one's data."""
    spec = load_spec(table)
    for official, times in ((True, 0), (False, 1)):
        runs = [
            Run(f"job{s}", "complete", {"seed": s}, {spec.metric: 0.5}, official)
            for s in spec.seeds
        ]
        cells = [aggregate(runs, spec.metric, spec.transform, len(spec.seeds)) for _ in spec.rows]
        text = markdown(reproduction_grid(spec, cells))
        assert len(re.findall(r"not the official", text, re.IGNORECASE)) == times, text
        assert all(text.count(note) == 1 for note in spec.notes)


def write_job(folder, seed, lr, model, acc=None, task="train"):
    """A job folder as fmlab-train leaves it: results.json when it finished, else only .hydra/."""
    config = {"task_name": task, "seed": seed, "model": {"_target_": model}}
    config["optimizer"] = {"lr": lr}
    if acc is None:
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
        return
    record = {"status": "complete", "metrics": {"test/acc": acc}, "config": config}
    record["data"] = {"official": True}
    write_json_atomic(folder / "results.json", record)


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    jobs = [
        ("A", 0.1, 1, 0.5),
        ("A", 0.1, 2, 0.6),
        ("A", 0.01, 1, 0.7),
        ("A", 0.01, 2, 0.9),
        ("B", 0.1, 1, 0.65),
        ("B", 0.1, 2, None),  # unfinished
        ("B", 0.01, 1, 0.6),
        ("B", 0.01, 2, 0.62),
    ]
    for i, (model, lr, seed, acc) in enumerate(jobs):
        write_job(root / str(i), seed, lr, f"nets.{model}", acc)
    write_job(root / "eval", 1, 0.1, "nets.A", 0.99, task="eval")  # another app: left out
    return root


def test_fmlab_table_groups_runs_by_config_keys(sweep, tmp_path):
    out = tmp_path / "table"
    proc = run_cli(
        "fmlab-table",
        f"runs={sweep}",
        "rows=model._target_",
        "cols=optimizer.lr",
        f"out={out}",
        cwd=tmp_path,
    )
    expected = f"""\
**test/acc, mean ± sample std (n seeds); higher is better, best per column in bold.**

| model._target_ | optimizer.lr=0.01 | optimizer.lr=0.1 |
| :-- | --: | --: |
| nets.A | **0.80 ± 0.14 (2)** | 0.55 ± 0.07 (2) |
| nets.B | 0.61 ± 0.01 (2) | **0.65 (1)** †‡ |

† Jobs left out of the mean: model._target_=nets.B / optimizer.lr=0.1, seed 2: unfinished \
({sweep / "5"}).

‡ Fewer seeds than asked: model._target_=nets.B / optimizer.lr=0.1 (1 of 2).
"""
    assert (out / "table.md").read_text() == expected
    assert expected in proc.stdout
    assert (out / "table.tex").read_text().count(r"\textbf{") == 2
    assert len((out / "table.csv").read_text().splitlines()) == 5  # header + 4 cells


def test_fmlab_table_without_rows_names_the_keys_that_vary(sweep, tmp_path):
    proc = run_cli("fmlab-table", f"runs={sweep}", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "model._target_, optimizer.lr, seed" in proc.stderr


def test_find_jobs_reads_finished_and_unfinished_jobs(sweep):
    runs = find_jobs([sweep])
    assert len(runs) == 8 and [r.status for r in runs].count("unfinished") == 1
    assert len(find_jobs([sweep], task=None)) == 9
    with pytest.raises(FmlabError, match="is not a folder"):
        find_jobs([sweep / "nothing"])


def test_wandb_collection_refuses_clearly_when_offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(FmlabError, match="needs the network and credentials"):
        wandb_jobs("lab/fmlab")


def test_a_wandb_run_becomes_a_run():
    class ApiRun:  # the attributes of wandb.apis.public.Run that are read
        url = "https://wandb.ai/lab/fmlab/runs/abc"
        state = "crashed"
        config = {"seed": 3, "model": {"_target_": "nets.A"}}
        summary_metrics = {"test/acc": 0.5, "_step": 10, "flag": True, "name": "x"}

    converted = run_from_wandb(ApiRun())
    assert converted.status == "crashed" and not converted.complete
    assert converted.metrics == {"test/acc": 0.5, "_step": 10.0}
    assert converted.value("model._target_") == "nets.A" and converted.seed == 3


def test_learning_curves_from_csv_logs(tmp_path):
    job = tmp_path / "job"
    (job / "csv").mkdir(parents=True)
    (job / "csv" / "metrics.csv").write_text(
        "epoch,step,train/loss_step,val/loss\n0,9,2.0,\n0,19,1.0,\n0,19,,1.5\n1,29,0.5,\n"
    )
    series = read_series(job / "csv" / "metrics.csv")
    assert series == {"train/loss_step": [(9, 2.0), (19, 1.0), (29, 0.5)], "val/loss": [(19, 1.5)]}
    assert smoothed([2.0, 1.0], 0.5) == pytest.approx([2.0, 4 / 3])  # debiased: starts at 2
    paths = plot_curves([("net", [job])], ["train/loss_step", "val/loss", "nope"], tmp_path / "c")
    assert [p.name for p in paths] == ["c.png", "c.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert plot_curves([("net", [tmp_path])], ["train/loss_step"], tmp_path / "none") == []
