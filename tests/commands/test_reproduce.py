"""fmlab-reproduce end to end on the synthetic CIFAR-10 folder, and the parts it decides with:
which runs are complete, which overrides it passes on, which machines it refuses."""

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from conftest import run_cli

from fmlab.commands.reproduce import comparisons
from fmlab.errors import FmlabError
from fmlab.run.record import write_json_atomic
from fmlab.tables.cells import Cell
from fmlab.tables.launch import check_passthrough, job_state, plan
from fmlab.tables.spec import parse_spec

TINY_SPEC = {
    "title": "Tiny ConvNet",
    "metric": "test/acc",
    "transform": "pct",
    "better": "higher",
    "digits": 1,
    "seeds": [1, 2],
    "overrides": [
        "experiment=seed_convnet",
        "logger=csv",
        "callbacks=none",
        "data.batch_size=20",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=4",
        "trainer.log_every_n_steps=1",
    ],
    "reference": {"source": "none, a test", "tolerance": 100},
    "rows": [
        {"name": "lr 0.05", "id": "fast", "overrides": ["optimizer.lr=0.05"], "reference": 50},
        {"name": "lr 0.0001", "id": "slow", "overrides": ["optimizer.lr=0.0001"]},
    ],
}


def reproduce(spec: Path, out: Path, data: Path, *extra: str, check=True):
    return run_cli(
        "fmlab-reproduce",
        f"table={spec}",
        f"out_dir={out}",
        f"paths.data_dir={data}",
        *extra,
        cwd=out.parent,
        # One torch thread per job: on a shared 2-core machine two threads per process spin
        # against each other's load (measured 1.4 against 79 steps/s for seed_convnet).
        env={"OMP_NUM_THREADS": "1"},
        check=check,
    )


@pytest.mark.slow  # many fmlab-train runs: .ci/run runs it after `make test`
def test_reproduce_launches_the_runs_then_nothing(synthetic_data, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    out = tmp_path / "tiny"
    first = reproduce(spec, out, synthetic_data, "parallel_rows=true")  # both rows' sweeps at once
    assert "launching 4 of 4 runs" in first.stderr and first.stderr.count("Launching: ") == 2
    records = sorted(out.glob("runs/*/seed_*/results.json"))
    assert [str(p.relative_to(out / "runs")) for p in records] == [
        "fast/seed_1/results.json",
        "fast/seed_2/results.json",
        "slow/seed_1/results.json",
        "slow/seed_2/results.json",
    ]
    seeds = [json.loads(p.read_text())["config"]["seed"] for p in records]
    assert seeds == [1, 2, 1, 2]
    lrs = {json.loads(p.read_text())["config"]["optimizer"]["lr"] for p in records}
    assert lrs == {0.05, 0.0001}
    table = (out / "table.md").read_text()
    assert "| Configuration | Reference | Ours | n | Δ | Verdict |" in table
    assert "| lr 0.05 | 50 |" in table and "| lr 0.0001 | — |" in table
    assert table.count("| 2 |") == 2 and "✓ within ±100" in table
    assert "§ Not the official data release" in table  # the synthetic folder is not
    assert table in first.stdout
    assert (out / "curves.png").stat().st_size > 1000 and (out / "curves.pdf").is_file()

    outputs = {p: p.read_bytes() for p in [out / "table.md", out / "table.tex", out / "table.csv"]}
    stamps = [p.stat().st_mtime_ns for p in records]
    second = reproduce(spec, out, synthetic_data)
    assert "All 4 runs of table tiny are complete; launching nothing." in second.stderr
    assert "Launching" not in second.stderr
    assert [p.stat().st_mtime_ns for p in records] == stamps
    assert {p: p.read_bytes() for p in outputs} == outputs

    # A job that did not finish (here: its record is gone) is set aside and it alone relaunched.
    (out / "runs" / "slow" / "seed_2" / "results.json").unlink()
    third = reproduce(spec, out, synthetic_data)
    assert "launching 1 of 4 runs" in third.stderr and "seed=2 " in third.stderr
    assert len(list((out / "stale" / "slow").glob("seed_2-*/csv/metrics.csv"))) == 1
    assert [p.stat().st_mtime_ns for p in records[:3]] == stamps[:3]
    assert records[3].is_file() and (out / "table.md").read_text().count("| 2 |") == 2

    # Other overrides without launching: no run counts, and the table with numbers is kept.
    kept = (out / "table.md").read_bytes()
    fourth = reproduce(
        spec, out, synthetic_data, "trainer.max_epochs=2", "launch=false", check=False
    )
    assert fourth.returncode == 1 and "which has numbers, is kept" in fourth.stderr
    assert (out / "table.md").read_bytes() == kept


@pytest.mark.slow  # four fmlab-train runs
def test_a_grid_spec_launches_its_runs_and_draws_its_figure(synthetic_data, tmp_path):
    grid_spec = {k: v for k, v in TINY_SPEC.items() if k != "rows"}
    grid_spec["overrides"] = [o for o in TINY_SPEC["overrides"] if "batch_size" not in o]
    grid_spec |= {
        "seeds": [1],
        "grid": {"optimizer.lr": [0.05, 0.0001], "data.batch_size": [20, 10]},
        "figure": {"x": "optimizer.lr", "curves": "data.batch_size"},
    }
    spec = tmp_path / "grid.yaml"
    spec.write_text(yaml.safe_dump(grid_spec, sort_keys=False))  # the grid's order is the rows'
    out = tmp_path / "grid"
    first = reproduce(spec, out, synthetic_data)
    assert "launching 4 of 4 runs" in first.stderr and first.stderr.count("Launching: ") == 4
    made = {
        p.parent.parent.name: json.loads(p.read_text())["config"]
        for p in out.glob("runs/*/seed_1/results.json")
    }
    assert {k: (c["optimizer"]["lr"], c["data"]["batch_size"]) for k, c in made.items()} == {
        "lr-0.05_batch_size-20": (0.05, 20),
        "lr-0.05_batch_size-10": (0.05, 10),
        "lr-0.0001_batch_size-20": (0.0001, 20),
        "lr-0.0001_batch_size-10": (0.0001, 10),
    }
    table = (out / "table.md").read_text()
    assert "| batch_size | lr=0.0001 | lr=0.05 | best lr |" in table
    body = [line for line in table.splitlines() if line.startswith("| 20 |")]
    body += [line for line in table.splitlines() if line.startswith("| 10 |")]
    assert len(body) == 2 and all(line.count("**") == 2 for line in body)
    assert "best lr " in table and "the optimum moves" in table and table in first.stdout
    assert "fingerprint): lr=0.0001, batch_size=20; lr=0.05, batch_size=20; " in table
    assert (out / "figure.png").stat().st_size > 10_000 and (out / "figure.pdf").is_file()
    assert not (out / "curves.png").exists()

    outputs = [out / n for n in ("table.md", "table.tex", "table.csv", "figure.pdf")]
    before = {p: p.read_bytes() for p in outputs}
    second = reproduce(spec, out, synthetic_data)
    assert "All 4 runs of table grid are complete; launching nothing." in second.stderr
    assert "Launching" not in second.stderr
    assert {p: p.read_bytes() for p in outputs} == before


def test_a_gpu_table_is_refused_on_a_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    spec = tmp_path / "gpu.yaml"
    spec.write_text(yaml.safe_dump({**TINY_SPEC, "requires": "gpu"}))
    proc = reproduce(spec, tmp_path / "gpu", tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "needs a GPU" in proc.stderr and "force=true" in proc.stderr
    assert not (tmp_path / "gpu" / "runs").exists()  # nothing launched


def test_unknown_table_names_the_shipped_ones(tmp_path):
    proc = run_cli("fmlab-reproduce", "table=nope", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "convnet_cifar10" in proc.stderr


def write_finished_job(folder: Path, overrides: list[str], status="complete"):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    write_json_atomic(folder / "results.json", {"status": status, "metrics": {}, "config": {}})


def test_job_state_compares_the_overrides_a_job_was_made_with(tmp_path):
    made = ["experiment=seed_convnet", "paths.data_dir=/here", "seed=1"]
    write_finished_job(tmp_path / "done", made)
    asked = ["seed=1", "experiment=seed_convnet", "paths.data_dir=/elsewhere"]
    assert job_state(tmp_path / "done", asked) == "complete"  # order and paths.* do not matter
    assert job_state(tmp_path / "done", [*asked, "trainer.max_epochs=1"]) == "stale"
    # A multirun records an interpolation in a value escaped: the same override.
    write_finished_job(tmp_path / "swept", [*made, "init_from=/r/seed_$\\{seed\\}/last.ckpt"])
    assert (
        job_state(tmp_path / "swept", [*made, "init_from=/r/seed_${seed}/last.ckpt"]) == "complete"
    )
    # A multirun records values as it parsed them: True for true, 0.001 for 1e-3.
    write_finished_job(
        tmp_path / "parsed", [*made, "task.freeze_backbone=True", "optimizer.lr=0.001"]
    )
    spelled = [*made, "task.freeze_backbone=true", "optimizer.lr=1e-3"]
    assert job_state(tmp_path / "parsed", spelled) == "complete"
    assert job_state(
        tmp_path / "parsed", [*made, "task.freeze_backbone=false", "optimizer.lr=1e-3"]
    ) == ("stale")
    assert job_state(tmp_path / "nothing", asked) == "missing"
    (tmp_path / "running" / ".hydra").mkdir(parents=True)
    (tmp_path / "running" / ".hydra" / "config.yaml").write_text("seed: 1\n")
    assert job_state(tmp_path / "running", asked) == "unfinished"
    write_finished_job(tmp_path / "failed", made, status="failed")
    assert job_state(tmp_path / "failed", made) == "failed"


def test_pretraining_runs_come_first_and_rows_name_their_checkpoints(tmp_path):
    pretrain = [{"name": "MLM", "id": "mlm", "overrides": ["task=masked_lm"]}]
    row = {"name": "fine-tuned", "id": "ft", "overrides": ["init_from={runs}/mlm/seed_${seed}/x"]}
    spec = parse_spec("t", {**TINY_SPEC, "pretrain": pretrain, "rows": [row]})
    jobs = plan(spec, tmp_path / "runs", [])
    assert [(j.row.id, j.seed) for j in jobs] == [("mlm", 1), ("mlm", 2), ("ft", 1), ("ft", 2)]
    assert f"init_from={tmp_path}/runs/mlm/seed_${{seed}}/x" in jobs[3].overrides
    assert [r.name for r in spec.rows] == ["fine-tuned"]  # the table shows the rows alone
    with pytest.raises(FmlabError, match="distinct"):
        parse_spec("t", {**TINY_SPEC, "pretrain": [{**pretrain[0], "id": "ft"}], "rows": [row]})


def test_compared_rows_get_their_difference_and_its_standard_error():
    rows = [{"name": "new", "id": "new"}, {"name": "old", "id": "old"}]
    spec = parse_spec("t", {**TINY_SPEC, "rows": rows, "compare": [["new", "old"]]})
    cells = [Cell(values=[80.0, 82.0, 84.0]), Cell(values=[76.0, 77.0, 78.0])]
    (line,) = comparisons(spec, cells)  # +5 ± sqrt(4/3 + 1/3) = 1.29: 3.9 SE
    assert line == "new − old: +5.0 ± 1.3 (standard error; 3.9 SE): ahead by more than two SE."
    cells[1] = Cell(values=[79.0, 81.0, 83.0])  # +1 ± 1.63
    assert comparisons(spec, cells)[0].endswith(
        "(standard error; 0.6 SE): not ahead by more than two SE."
    )
    with pytest.raises(FmlabError, match="compare"):
        parse_spec("t", {**TINY_SPEC, "rows": rows, "compare": [["new", "gone"]]})


def test_passthrough_overrides_must_each_give_one_value():
    check_passthrough(["hydra/launcher=submitit_slurm", "trainer.max_epochs=1", "+a.b=[1,2]"])
    with pytest.raises(FmlabError, match="sweeps over several values"):
        check_passthrough(["optimizer.lr=0.1,0.01"])
    with pytest.raises(FmlabError, match="seeds come from the table spec"):
        check_passthrough(["seed=3"])
    with pytest.raises(FmlabError, match="could not parse"):
        check_passthrough(["trainer.max_epochs=[1"])


def test_reproduce_refuses_flags(tmp_path):
    proc = run_cli("fmlab-reproduce", "-m", "table=convnet_cifar10", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "takes no flags" in proc.stderr
    assert os.listdir(tmp_path) == []  # nothing written


def test_launch_false_writes_the_table_of_what_exists(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    proc = reproduce(spec, tmp_path / "tiny", tmp_path, "launch=false", "trainer.max_epochs=3")
    assert "launch=false: 4 of 4 runs are not complete." in proc.stderr
    table = (tmp_path / "tiny" / "table.md").read_text()
    # What it was made with, less where things are kept (paths.data_dir): a shortened table says so.
    assert "Made with the fmlab-train overrides: trainer.max_epochs=3." in table
    assert "| lr 0.05 | 50 | — ‡ | 0 | — | not run |" in table
    assert "‡ Fewer seeds than asked: lr 0.05 (0 of 2); lr 0.0001 (0 of 2)." in table
    assert not (tmp_path / "tiny" / "runs").exists()
