"""Bad input through the real CLI: one paragraph naming the bad value and the fix, a non-zero
exit, no traceback, and a finished run's results.json left exactly as it was."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_cli

TESTS = Path(__file__).parents[1]
SMALL = ["data.val_size=40", "data.batch_size=20", "trainer.max_epochs=1", "logger=csv"]


def NO_DATA(tmp: Path) -> list[str]:  # noqa: N802 (reads as the constant it stands in for)
    return [f"paths.data_dir={tmp}/no-data", "data.download=false"]


@pytest.fixture(scope="module")
def finished(synthetic_data, tmp_path_factory) -> Path:
    """A small finished run: its results.json must survive every bad input below."""
    root = tmp_path_factory.mktemp("finished")
    run_cli(
        "fmlab-train",
        f"paths.data_dir={synthetic_data}",
        f"hydra.run.dir={root}/run",
        *SMALL,
        cwd=root,
    )
    return root / "run"


class Payload:
    """Unpickling this creates a file: stands in for any code a checkpoint could carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def malicious_checkpoint(finished: Path, path: Path, marker: Path) -> Path:
    checkpoint = torch.load(finished / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["payload"] = Payload(marker)
    torch.save(checkpoint, path)
    return path


def other_architecture(finished: Path, path: Path) -> Path:
    """A checkpoint whose weights are not the ConvNet's: a renamed head and a wider first layer."""
    checkpoint = torch.load(finished / "checkpoints" / "last.ckpt", weights_only=True)
    weights = checkpoint["state_dict"]
    weights["net.head.weight"] = weights.pop("net.fc3.weight")
    weights["net.fc1.weight"] = torch.zeros(120, 300)
    torch.save(checkpoint, path)
    return path


def damaged_data(synthetic_data: Path, tmp: Path, how: str) -> Path:
    root = tmp / "data"
    shutil.copytree(synthetic_data, root)
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    if how == "missing":
        batch.unlink()
    elif how == "truncated":
        batch.write_bytes(batch.read_bytes()[:1000])
    else:
        batch.write_bytes(b"not a pickle at all" * 100)
    return root


def test_the_malicious_checkpoint_would_run_code(finished, tmp_path):
    """The payload is live: loaded without weights_only, it creates the file (so the refusals
    below are what keeps it from running)."""
    marker = tmp_path / "created"
    path = malicious_checkpoint(finished, tmp_path / "evil.ckpt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


# (case, command-line arguments given tmp/data/finished, fragments the message must contain)
CASES = {
    "unknown group option": (
        lambda t, d, f: ["fmlab-train", "model=resnet99"],
        [
            "model=resnet99 is not an option",
            "Did you mean 'resnet9'? The options are: ",
            " convnet,",
        ],
    ),
    "misspelled key": (
        lambda t, d, f: ["fmlab-train", "optimizer.lrr=0.1"],
        ["'optimizer.lrr' is not a key", "Did you mean 'lr'?"],
    ),
    "misspelled added argument": (
        lambda t, d, f: ["fmlab-train", f"paths.data_dir={d}", "+optimizer.momentun=0.5"],
        ["optimizer.momentun is not an argument of SGD", "Did you mean 'momentum'?"],
    ),
    "value of the wrong type": (
        lambda t, d, f: ["fmlab-train", f"paths.data_dir={d}", "data.batch_size=many"],
        ["data.batch_size='many' has the wrong type", "takes batch_size as int"],
    ),
    "net the data cannot feed": (
        lambda t, d, f: ["fmlab-train", f"paths.data_dir={d}", "model._target_=torch.nn.Embedding"],
        ["needs ['num_embeddings', 'embedding_dim']", "provides ['num_classes']"],
    ),
    "data folder missing": (
        lambda t, d, f: ["fmlab-train", f"paths.data_dir={t}/none", "data.download=false"],
        ["CIFAR-10 is not in", "cifar-10-python.tar.gz"],
    ),
    "data file missing": (
        lambda t, d, f: ["fmlab-train", f"paths.data_dir={damaged_data(d, t, 'missing')}"],
        ["data_batch_3 is missing", "extract cifar-10-python.tar.gz"],
    ),
    "data file truncated": (
        lambda t, d, f: ["fmlab-train", f"paths.data_dir={damaged_data(d, t, 'truncated')}"],
        ["data_batch_3 is corrupt or truncated", "extract a fresh copy"],
    ),
    "data file corrupt": (
        lambda t, d, f: ["fmlab-train", f"paths.data_dir={damaged_data(d, t, 'garbage')}"],
        ["data_batch_3 is corrupt or truncated", "extract a fresh copy"],
    ),
    "checkpoint missing": (
        lambda t, d, f: ["fmlab-eval", f"ckpt_path={t}/nope.ckpt", f"paths.data_dir={d}"],
        ["nope.ckpt' does not exist", "checkpoints/last.ckpt"],
    ),
    "checkpoint corrupt": (
        lambda t, d, f: [
            "fmlab-eval",
            f"ckpt_path={truncated_copy(f / 'checkpoints' / 'last.ckpt', t / 'bad.ckpt')}",
            f"paths.data_dir={d}",
        ],
        ["bad.ckpt' is corrupt or truncated", "Use another checkpoint"],
    ),
    "checkpoint of another architecture": (
        lambda t, d, f: [
            "fmlab-train",
            f"paths.data_dir={d}",
            f"ckpt_path={other_architecture(f, t / 'other.ckpt')}",
        ],
        [
            "another architecture",
            "missing: net.fc3.weight",
            "unexpected: net.head.weight",
            "net.fc1.weight (120, 300) vs (120, 400)",
        ],
    ),
    "non-ASCII value left unquoted": (
        lambda t, d, f: [
            "fmlab-sample",
            f"ckpt_path={f / 'checkpoints' / 'last.ckpt'}",
            "prompt=宝玉",
        ],
        ["cannot read the value of prompt in 'prompt=宝玉'", "\"prompt='宝玉'\""],
    ),
    "optimized metric that no run logs": (
        lambda t, d, f: ["fmlab-train", f"paths.data_dir={d}", "optimized_metric=val/accuracy"],
        ["optimized_metric='val/accuracy' was not logged", "'val/acc'"],
    ),
    "a metric on a validation split the run lacks": (
        lambda t, d, f: [
            "fmlab-train",
            f"paths.data_dir={d}",
            "data.val_size=0",
            "optimized_metric=val/acc",
        ],
        ["optimized_metric='val/acc': this run has no validation split", "data.val_size=5000"],
    ),
    "a test metric of a run that does not test": (
        lambda t, d, f: [
            "fmlab-train",
            f"paths.data_dir={d}",
            "test=false",
            "optimized_metric=test/acc",
        ],
        ["with test=false this run never logs test/acc", "Optimise val/acc"],
    ),
    "resuming a run with another config": (
        lambda t, d, f: [
            "fmlab-train",
            f"paths.data_dir={_copy(f, t / 'run')}",
            "optimizer.lr=0.5",
        ],
        ["holds a run with another config (optimizer.lr: 0.1 -> 0.5)", "choose another run_id"],
    ),
    # Refused before any data is read: the data folder named here does not even exist.
    "negative learning rate": (
        lambda t, d, f: ["fmlab-train", *NO_DATA(t), "optimizer.lr=-0.1"],
        ["optimizer.lr=-0.1 is out of range: SGD takes lr > 0"],
    ),
    "batch of zero": (
        lambda t, d, f: ["fmlab-train", *NO_DATA(t), "data.batch_size=0"],
        ["data.batch_size=0 is out of range: CIFAR10DataModule takes batch_size ≥ 1"],
    ),
    "ddp_spawn (lightning-hydra-template's ddp_sim)": (
        lambda t, d, f: [
            "fmlab-train",
            *NO_DATA(t),
            "+trainer.strategy=ddp_spawn",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
        ],
        ["trainer.strategy=ddp_spawn is not supported", "Use trainer=ddp_cpu"],
    ),
    "NaN loss": (
        lambda t, d, f: [
            "fmlab-train",
            f"paths.data_dir={d}",
            "callbacks.step_checkpoint.every_n_train_steps=2",
            "+callbacks.fault._target_=faults.PoisonAt",
            "+callbacks.fault.step=3",
        ],
        ["loss became NaN or Inf at step 4", "the last good checkpoint is", "last.ckpt"],
    ),
}


# Mistakes on the command line itself exit 2, as argparse's do; everything else exits 1.
USAGE = {
    "unknown group option",
    "misspelled key",
    "misspelled added argument",
    "value of the wrong type",
    "non-ASCII value left unquoted",
    "negative learning rate",
    "batch of zero",
}


def _copy(run: Path, to: Path) -> Path:
    """A copy of the finished run's folder; returns the data folder it was trained on."""
    shutil.copytree(run, to)
    return Path(json.loads((run / "results.json").read_text())["config"]["paths"]["data_dir"])


def truncated_copy(source: Path, path: Path) -> Path:
    path.write_bytes(source.read_bytes()[:5000])
    return path


def assert_one_clear_message(proc, fragments: list[str], exit_code: int = 1) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == exit_code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for fragment in fragments:
        assert fragment in output, output[-3000:]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_message(case, finished, synthetic_data, tmp_path):
    make_args, fragments = CASES[case]
    before = (finished / "results.json").read_bytes()
    app, *args = make_args(tmp_path, synthetic_data, finished)
    if app == "fmlab-train":
        args = [*SMALL, *args]  # the case's own values come last and win
    args = [app, *args, f"hydra.run.dir={tmp_path}/run"]
    proc = run_cli(*args, cwd=tmp_path, env={"PYTHONPATH": str(TESTS)}, check=False)
    assert_one_clear_message(proc, fragments, 2 if case in USAGE else 1)
    assert (finished / "results.json").read_bytes() == before


# (corpus file contents, fragments the message must contain)
TEXT_CASES = {
    "corpus not UTF-8": (
        "Caf\xe9 au lait\n".encode("latin-1") * 50,
        ["corpus.txt is not valid utf-8: byte 0xe9 at offset 3 (line 1)", "data.encoding="],
    ),
    "empty corpus": (b"", ["corpus.txt' is empty", "nothing to train on"]),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_bad_text_data_is_one_clear_message(case, tmp_path):
    contents, fragments = TEXT_CASES[case]
    (tmp_path / "corpus.txt").write_bytes(contents)
    proc = run_cli(
        "fmlab-train",
        "experiment=gpt_shakespeare_char_cpu",
        f"data.corpus={tmp_path / 'corpus.txt'}",
        "logger=none",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        check=False,
    )
    assert_one_clear_message(proc, fragments)
    if case == "NaN loss":  # the newest checkpoint is the last good one: before the bad step
        last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
        assert last["global_step"] == 2
        assert all(torch.isfinite(w).all() for w in last["state_dict"].values())
        assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("how", ["fmlab-eval", "fmlab-train ckpt_path", "fmlab-train resume"])
def test_a_checkpoint_carrying_code_is_refused_and_never_run(
    how, finished, synthetic_data, tmp_path
):
    marker = tmp_path / "created"
    run_dir = tmp_path / "run"
    if how == "fmlab-eval":
        evil = malicious_checkpoint(finished, tmp_path / "evil.ckpt", marker)
        args = ["fmlab-eval", f"ckpt_path={evil}"]
    elif how == "fmlab-train ckpt_path":
        evil = malicious_checkpoint(finished, tmp_path / "evil.ckpt", marker)
        args = ["fmlab-train", f"ckpt_path={evil}", *SMALL]
    else:  # planted as the newest checkpoint of the run folder that resume=auto continues
        (run_dir / "checkpoints").mkdir(parents=True)
        evil = malicious_checkpoint(finished, run_dir / "checkpoints" / "last.ckpt", marker)
        args = ["fmlab-train", "resume=auto", *SMALL]
    proc = run_cli(
        *args,
        f"paths.data_dir={synthetic_data}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert f"{evil}' was refused" in output and "(io.open)" in output
    assert "Nothing in it was run" in output
    assert not marker.exists()


def test_finished_run_checkpoints_load_as_plain_data(finished):
    record = json.loads((finished / "results.json").read_text())
    for path in [*finished.rglob("*.ckpt"), record["checkpoints"]["last"]]:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert checkpoint["hyper_parameters"]["config"]["model"]["_target_"] == "fmlab.nets.ConvNet"


def test_a_run_refused_before_it_made_anything_leaves_no_folder(synthetic_data, tmp_path):
    """Mistakes do not pile up as run folders that `ls -t logs/train/runs` would pick first."""
    args = [f"paths.data_dir={synthetic_data}", "logger=none"]
    proc = run_cli("fmlab-train", *args, "optimizer.lr=-0.1", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "optimizer.lr=-0.1 is out of range" in proc.stdout
    assert list((tmp_path / "logs" / "train" / "runs").iterdir()) == []
