import logging
import pickle
import shutil

import pytest
import torch

from fmlab.data import CIFAR10DataModule
from fmlab.data import cifar10_files as cifar_module
from fmlab.errors import FmlabError


def batches(loader):
    return list(loader)


def test_synthetic_split_sizes_dtypes_and_fixed_split(synthetic_data):
    dm = CIFAR10DataModule(str(synthetic_data), batch_size=16, eval_batch_size=50, val_size=30)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (170, 30, 40)
    x, y = dm.train_set.tensors
    assert x.dtype == torch.uint8 and x.shape == (170, 3, 32, 32) and y.dtype == torch.int64
    again = CIFAR10DataModule(str(synthetic_data), val_size=30)
    again.setup()
    assert torch.equal(again.val_set.tensors[0], dm.val_set.tensors[0])
    other = CIFAR10DataModule(str(synthetic_data), val_size=30, split_seed=1)
    other.setup()
    assert not torch.equal(other.val_set.tensors[0], dm.val_set.tensors[0])
    # Every image lands in exactly one split.
    assert len(dm.train_dataloader()) == 11 and sum(len(b[1]) for b in dm.train_dataloader()) == 170


def test_val_size_larger_than_the_training_set_is_a_clear_error(synthetic_data):
    with pytest.raises(FmlabError, match=r"data.val_size=500 is out of range.*0 .* and 199"):
        CIFAR10DataModule(str(synthetic_data), val_size=500).setup()


def test_no_validation_split(synthetic_data):
    dm = CIFAR10DataModule(str(synthetic_data), val_size=0)
    dm.setup()
    assert not dm.has_val and dm.val_dataloader() == [] and len(dm.train_set) == 200


def test_training_order_depends_on_seed_and_epoch_only(synthetic_data):
    def first_labels(seed, epoch):
        dm = CIFAR10DataModule(str(synthetic_data), batch_size=8, val_size=0, seed=seed)
        dm.setup()
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return torch.cat([y for _, y in loader])

    torch.manual_seed(123)  # the global RNG must not matter
    a = first_labels(0, 0)
    torch.manual_seed(456)
    assert torch.equal(a, first_labels(0, 0))
    assert not torch.equal(a, first_labels(0, 1))
    assert not torch.equal(a, first_labels(1, 0))


def test_checksum_mismatch_warns_and_is_recorded(synthetic_data, caplog):
    dm = CIFAR10DataModule(str(synthetic_data), val_size=0)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    warnings = [r for r in caplog.records if "is not the official release" in r.getMessage()]
    assert len(warnings) == 1
    record = dm.record
    assert record["official"] is False and record["name"] == "cifar10"
    assert len(record["fingerprint"]) == 16 and "data_batch_1" in record["mismatched_files"]
    other = CIFAR10DataModule(str(synthetic_data), val_size=0)
    other.setup()
    assert other.record["fingerprint"] == record["fingerprint"]


def test_offline_download_failure_names_url_archive_and_folder(tmp_path, monkeypatch):
    # A closed local port: the download fails at once, as it does on a machine without network.
    monkeypatch.setattr(cifar_module, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    dm = CIFAR10DataModule(str(tmp_path / "data"))
    with pytest.raises(FmlabError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert "http://127.0.0.1:9/cifar-10-python.tar.gz" in message
    assert "cifar-10-python.tar.gz" in message and str(tmp_path / "data") in message
    assert "FMLAB_DATA_DIR" in message


def test_truncated_and_missing_files_are_clear_errors(synthetic_data, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(synthetic_data, broken)
    folder = broken / "cifar-10-batches-py"
    data = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(data[: len(data) // 2])
    with pytest.raises(FmlabError, match="data_batch_3 is corrupt or truncated"):
        CIFAR10DataModule(str(broken), val_size=0).setup()
    (folder / "data_batch_3").unlink()
    with pytest.raises(FmlabError, match="data_batch_3 is missing"):
        CIFAR10DataModule(str(broken), val_size=0).setup()


def test_a_data_file_cannot_run_code(synthetic_data, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(synthetic_data, evil)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(evil / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Payload(), b"labels": []}, f, protocol=2)
    with pytest.raises(FmlabError, match="test_batch is corrupt"):
        CIFAR10DataModule(str(evil), val_size=0).setup()
    assert not marker.exists()


# ---- the real data (FMLAB_DATA_DIR) -------------------------------------------------------


@pytest.fixture(scope="module")
def real_dm(real_data):
    dm = CIFAR10DataModule(str(real_data), batch_size=256, val_size=5000, split_seed=0)
    dm.setup()
    return dm


def test_real_split_sizes_and_label_counts(real_dm):
    assert (len(real_dm.train_set), len(real_dm.val_set), len(real_dm.test_set)) == (
        45000,
        5000,
        10000,
    )
    train_y, val_y = real_dm.train_set.tensors[1], real_dm.val_set.tensors[1]
    assert torch.equal(torch.bincount(torch.cat([train_y, val_y])), torch.full((10,), 5000))
    assert torch.equal(torch.bincount(real_dm.test_set.tensors[1]), torch.full((10,), 1000))
    assert real_dm.train_set.tensors[0].dtype == torch.uint8
    assert real_dm.record["official"] is False  # the lab's copy is JPEG-derived


def test_real_normalised_range_and_fixed_split(real_dm, real_data):
    x, _ = real_dm.on_after_batch_transfer(next(iter(real_dm.test_dataloader())), 0)
    assert x.dtype == torch.float32 and x.shape == (1000, 3, 32, 32)
    per_channel_mean = x.mean(dim=(0, 2, 3))
    assert per_channel_mean.abs().max() < 0.1  # CIFAR statistics centre the data
    assert -2.1 < x.min() < -1.8 and 2.0 < x.max() < 2.2  # (0 - mean)/std, (1 - mean)/std
    again = CIFAR10DataModule(str(real_data), val_size=5000, split_seed=0)
    again.setup()
    assert torch.equal(again.val_set.tensors[1], real_dm.val_set.tensors[1])


def test_real_augmentation_changes_pixels_not_labels(real_dm):
    class Training:  # what on_after_batch_transfer asks of the trainer
        training = True

    x_u8, y = next(iter(real_dm.train_dataloader()))
    plain, y_plain = real_dm.on_after_batch_transfer((x_u8, y), 0)
    real_dm.trainer = Training()
    try:
        torch.manual_seed(0)
        augmented, y_aug = real_dm.on_after_batch_transfer((x_u8, y), 0)
    finally:
        real_dm.trainer = None
    assert torch.equal(y_aug, y_plain)
    changed = (augmented != plain).flatten(1).any(1).float().mean()
    assert changed > 0.8  # nearly every image is shifted and/or mirrored
