"""The pieces behind resuming and refusing, in-process: loader position, config checks against
constructor signatures, atomic writes."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import OmegaConf
from test_configs import EXPERIMENTS, OPTIONS, stand_ins

from fmlab.config.checks import check_config
from fmlab.data.batches import BatchIndices, BatchLoader, TensorBatches
from fmlab.errors import FmlabError
from fmlab.run.checkpoints import AtomicCheckpointIO
from fmlab.run.record import write_json_atomic


def loader(seed: int = 0) -> BatchLoader:
    data = TensorBatches(torch.arange(50))
    return BatchLoader(data, batch_size=None, sampler=BatchIndices(50, 4, shuffle=True, seed=seed))


def test_loader_resumes_mid_epoch_with_exactly_the_batches_left():
    first = loader()
    first.sampler.set_epoch(2)
    batches = iter(first)
    seen = [next(batches)[0] for _ in range(5)]
    state = first.state_dict()
    assert state == {"epoch": 2, "batches": 5}
    rest = [b[0] for b in batches]

    resumed = loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)  # as Lightning does before the first batch
    again = [b[0] for b in resumed]
    assert len(again) == len(rest) == 13 - 5
    assert all(torch.equal(a, b) for a, b in zip(again, rest, strict=True))
    assert resumed.state_dict() == {"epoch": 2, "batches": 13}
    assert not set(torch.cat(seen).tolist()) & set(torch.cat(again).tolist())


def test_loader_resumes_its_own_batches_under_ddp():
    # Lightning wraps the sampler in a DistributedSamplerWrapper under DDP; rank 1 of 2 here.
    def rank1() -> BatchLoader:
        base = loader()
        sampler = DistributedSamplerWrapper(base.sampler, num_replicas=2, rank=1, shuffle=False)
        return BatchLoader(base.dataset, batch_size=None, sampler=sampler)

    first = rank1()
    first.sampler.set_epoch(1)
    batches = iter(first)
    [next(batches) for _ in range(3)]
    rest = [b[0] for b in batches]
    resumed = rank1()
    resumed.load_state_dict(first.state_dict() | {"batches": 3})
    resumed.sampler.set_epoch(1)
    again = [b[0] for b in resumed]
    assert len(again) == len(rest) == 7 - 3
    assert all(torch.equal(a, b) for a, b in zip(again, rest, strict=True))


def test_loader_state_of_a_finished_epoch_does_not_cut_the_next_one():
    resumed = loader()
    resumed.load_state_dict({"epoch": 2, "batches": 13})
    resumed.sampler.set_epoch(3)  # Lightning moved on to the next epoch
    assert len(list(resumed)) == 13


@pytest.mark.parametrize(
    "overrides",
    [[f"experiment={e}"] for e in EXPERIMENTS]
    + [[f"{g}={o}"] for g, options in OPTIONS.items() for o in options],
)
def test_every_shipped_config_passes_the_signature_checks(
    overrides, compose_cfg, synthetic_data, request
):
    experiment = overrides[0].partition("experiment=")[2]
    extra = stand_ins(experiment, synthetic_data, request) if experiment else []
    cfg = compose_cfg("train", [*overrides, f"paths.data_dir={synthetic_data}", *extra])
    check_config(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=fast", "optimizer.lr='fast' has the wrong type"),
        ("trainer.max_epochs=1.5", "trainer.max_epochs=1.5 has the wrong type"),
        ("data.flip=maybe", "data.flip='maybe' has the wrong type: CIFAR10DataModule takes flip"),
        ("+data.batchsize=3", "data.batchsize is not an argument of CIFAR10DataModule. Did you"),
        ("model._target_=fmlab.nets.Nope", "model._target_='fmlab.nets.Nope' cannot be imported"),
    ],
)
def test_wrong_values_are_named_with_their_constructor(override, message, compose_cfg):
    cfg = compose_cfg("train", [override])
    with pytest.raises(FmlabError, match=message.replace("(", r"\(").replace(".", r"\.")):
        check_config(OmegaConf.to_container(cfg, resolve=True))


class KillWhileWriting:
    def __str__(self) -> str:  # json.dump calls default=str halfway through the file
        import os

        os.kill(os.getpid(), signal.SIGKILL)
        return ""


def test_a_record_killed_mid_write_leaves_the_previous_one(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"status": "complete", "metrics": {"test/acc": 0.5}})
    code = (
        "import sys; sys.path[:0] = sys.argv[2:]; from test_checks import KillWhileWriting;"
        "from fmlab.run.record import write_json_atomic;"
        "write_json_atomic(sys.argv[1], {'metrics': {'x': 1.0}, 'big': ['x' * 100] * 10000,"
        " 'then': KillWhileWriting()})"
    )
    here = Path(__file__).parent  # test_checks.py, and tests/ for what it imports
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(here), str(here.parent)])
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(path.read_text())["metrics"] == {"test/acc": 0.5}
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # it died mid-write


def test_a_checkpoint_that_fails_to_save_leaves_the_previous_one(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for a lambda
        io.save_checkpoint({"step": torch.tensor(2), "bad": lambda: None}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
