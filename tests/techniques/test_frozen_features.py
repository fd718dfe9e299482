"""task.cache_features: a linear probe trains its head on features its frozen backbone computed
once, kept on disk, and reaches the numbers of the same probe run through the backbone."""

import pytest
import torch
from hydra.errors import InstantiationException

from fmlab.commands.train import build, train
from fmlab.errors import FmlabError

PROBE = [
    "model=convnet",
    "augment=none",
    "task.freeze_backbone=true",
    "logger=none",
    "callbacks=none",
    "data.batch_size=20",
    "data.val_size=40",
    "data.eval_batch_size=30",  # not a divisor of any split: the last batch is short
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "+trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def probe(compose_cfg, synthetic_data, tmp_path, *overrides):
    run = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"  # a folder of its own per run
    cfg = compose_cfg(
        "train",
        [
            f"paths.data_dir={synthetic_data}",
            f"paths.output_dir={run}",
            f"task.feature_cache_dir={tmp_path / 'features'}",
            *PROBE,
            *overrides,
        ],
    )
    return train(cfg)


def entries(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


def test_cached_probe_matches_the_probe_through_the_backbone_and_reuses_its_cache(
    compose_cfg, synthetic_data, tmp_path
):
    through = probe(compose_cfg, synthetic_data, tmp_path, "task.cache_features=false")
    assert entries(tmp_path / "features") == []
    cached = probe(compose_cfg, synthetic_data, tmp_path, "task.cache_features=true")
    built = entries(tmp_path / "features")
    assert len(built) == 3  # train, val and test splits: one cache each
    for key in ("test/acc", "test/loss", "val/loss"):
        assert cached["metrics"][key] == pytest.approx(through["metrics"][key], rel=1e-4), key
    assert cached["features"]["cache"] == str(tmp_path / "features")

    stamps = {k: (tmp_path / "features" / k / "features.pt").stat().st_mtime_ns for k in built}
    longer = probe(
        compose_cfg, synthetic_data, tmp_path, "task.cache_features=true", "trainer.max_epochs=3"
    )
    assert entries(tmp_path / "features") == built  # the same backbone: read back, not rebuilt
    assert {k: (tmp_path / "features" / k / "features.pt").stat().st_mtime_ns for k in built} == (
        stamps
    )
    assert longer["features"]["backbone_sha256"] == cached["features"]["backbone_sha256"]


def test_another_backbone_gets_its_own_features(compose_cfg, synthetic_data, tmp_path):
    """A random backbone depends on the seed: the cache key is its weights, so two seeds'
    backbones never share features."""
    first = probe(compose_cfg, synthetic_data, tmp_path, "task.cache_features=true", "seed=1")
    second = probe(compose_cfg, synthetic_data, tmp_path, "task.cache_features=true", "seed=2")
    assert first["features"]["backbone_sha256"] != second["features"]["backbone_sha256"]
    assert len(entries(tmp_path / "features")) == 6


def test_cached_features_refuse_augmentation_and_a_training_backbone(
    compose_cfg, synthetic_data, tmp_path
):
    with pytest.raises(FmlabError, match="augment=none"):
        probe(
            compose_cfg, synthetic_data, tmp_path, "task.cache_features=true", "augment=crop_flip"
        )
    cfg = compose_cfg(
        "train",
        [f"paths.data_dir={synthetic_data}", "task.cache_features=true"],
    )
    with pytest.raises(InstantiationException, match="task.freeze_backbone=true"):
        build(cfg)  # the task's FmlabError, as Hydra wraps it (fmlab-train prints it alone)


def test_features_are_what_the_head_receives(compose_cfg, synthetic_data, tmp_path):
    from fmlab.techniques.frozen_features import head_inputs

    cfg = compose_cfg("train", [f"paths.data_dir={synthetic_data}", *PROBE])
    datamodule, task = build(cfg)
    datamodule.setup("fit")
    images = datamodule.test_set.tensors[0][:10]
    features = head_inputs(task.net, task.head, images, datamodule.prepare, torch.device("cpu"), 4)
    task.net.eval()
    with torch.no_grad():
        logits = task.net(datamodule.prepare(images))
    head = task.net.get_submodule(task.head)
    torch.testing.assert_close(head(features), logits)
