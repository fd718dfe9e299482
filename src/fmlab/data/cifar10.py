"""CIFAR-10 from the official python-format folder, held in memory as uint8 tensors."""

from pathlib import Path
from typing import Annotated

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from fmlab.config.constraints import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range
from fmlab.data.augment import cutout, normalize, normalizer, random_crop, random_flip, resize
from fmlab.data.batches import BatchIndices, BatchLoader, ClassBalancedBatchIndices, TensorBatches
from fmlab.data.cifar10_files import (
    FOLDER,
    TRAIN_FILES,
    download,
    missing_message,
    read_batch,
    verify,
)
from fmlab.data.imbalance import long_tailed_split
from fmlab.errors import FmlabError

# Per-channel statistics of the CIFAR-10 training images.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
SAMPLING = ("uniform", "class_balanced")


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10 as uint8 tensors; crop, flip, normalisation and cutout run batched after device
    transfer. ``resize`` scales every image (training and evaluation) to that side after crop and
    flip, for nets pretrained at another resolution (ImageNet's 224).

    ``val_size`` images are carved from the 50,000 training images by a permutation that depends
    only on ``split_seed`` (0: no validation split). ``train_size`` keeps that many labelled
    training images, the same number per class, the first ones of that permutation (e.g. 1000 for
    a few-label transfer study; None: all). ``seed`` fixes the order of training batches.
    ``imbalance_ratio`` makes the training set long-tailed (``fmlab.data.imbalance``; the
    validation split is then class-balanced, the test set is untouched); ``sampling:
    class_balanced`` re-samples it so that every class is drawn equally often.
    """

    num_classes = 10

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: Annotated[int, AT_LEAST_ONE] = 128,
        eval_batch_size: Annotated[int, AT_LEAST_ONE] = 1000,
        val_size: Annotated[int, NON_NEGATIVE] = 5000,
        split_seed: int = 0,
        train_size: Annotated[int, AT_LEAST_ONE] | None = None,
        seed: int = 0,
        crop: bool = True,
        crop_padding: Annotated[int, NON_NEGATIVE] = 4,
        flip: bool = True,
        cutout: Annotated[int, NON_NEGATIVE] = 0,
        resize: Annotated[int, AT_LEAST_ONE] | None = None,
        imbalance_ratio: Annotated[float, Range(ge=1.0)] | None = None,
        sampling: str = "uniform",
        mean: tuple[float, float, float] = CIFAR10_MEAN,
        std: Annotated[tuple[float, float, float], POSITIVE] = CIFAR10_STD,
        num_workers: Annotated[int, NON_NEGATIVE] = 0,
        pin_memory: bool = False,
        download: bool = True,
    ) -> None:
        super().__init__()
        self.folder = Path(data_dir).expanduser() / FOLDER
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.split_seed, self.seed = val_size, split_seed, seed
        self.train_size = train_size
        self.crop, self.crop_padding, self.flip = crop, crop_padding, flip
        self.cutout, self.imbalance_ratio = cutout, imbalance_ratio
        self.resize = resize
        if sampling not in SAMPLING:
            raise FmlabError(f"data.sampling={sampling!r}: use one of {list(SAMPLING)}.")
        self.sampling = sampling
        self.mean, self.std = tuple(map(float, mean)), tuple(map(float, std))
        self.num_workers, self.pin_memory, self.download = num_workers, pin_memory, download
        self.record: dict = {}
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self.train_set = self.val_set = self.test_set = None
        self.encoded = False  # True once ``encode`` replaced the images by features

    @property
    def net_args(self) -> dict:
        """What only the data knows, handed to the network's constructor."""
        return {"num_classes": self.num_classes}

    @property
    def class_counts(self) -> list[int]:
        """Training images per class (after ``setup``), for class-weighted losses."""
        return torch.bincount(self.train_set.tensors[1], minlength=self.num_classes).tolist()

    @property
    def has_val(self) -> bool:
        return self.val_size > 0

    @property
    def has_test(self) -> bool:
        return True

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node: the only place that downloads.
        if (self.folder / "batches.meta").is_file():
            return
        if not self.download:
            raise FmlabError(missing_message(self.folder, "data.download=false"))
        download(self.folder)

    def setup(self, stage: str | None = None) -> None:
        if self.test_set is not None:
            return
        if not self.folder.is_dir():
            raise FmlabError(missing_message(self.folder, "it was not prepared"))
        self.record = verify(self.folder)
        train = [read_batch(self.folder / name) for name in TRAIN_FILES]
        images = torch.from_numpy(np.concatenate([x for x, _ in train]))  # (50000, 3, 32, 32)
        labels = torch.from_numpy(np.concatenate([y for _, y in train]))
        if not 0 <= self.val_size < len(images):
            raise FmlabError(
                f"data.val_size={self.val_size} is out of range: it must be between 0 (no "
                f"validation split) and {len(images) - 1}, carved from the {len(images)} "
                "training images."
            )
        order = torch.randperm(
            len(images), generator=torch.Generator().manual_seed(self.split_seed)
        )
        if self.imbalance_ratio is None:
            val_idx, train_idx = order[: self.val_size], order[self.val_size :]
        else:
            train_idx, val_idx = long_tailed_split(
                labels, order, self.val_size, self.imbalance_ratio, self.num_classes
            )
        if self.train_size is not None:
            train_idx = self._balanced_subset(train_idx, labels)
        self.train_set = TensorBatches(images[train_idx], labels[train_idx])
        self.val_set = TensorBatches(images[val_idx], labels[val_idx]) if self.has_val else None
        test_x, test_y = read_batch(self.folder / "test_batch")
        self.test_set = TensorBatches(torch.from_numpy(test_x), torch.from_numpy(test_y))
        self.record.update(
            train_size=len(self.train_set), val_size=self.val_size, test_size=len(self.test_set)
        )
        if self.imbalance_ratio is not None:
            self.record.update(imbalance_ratio=self.imbalance_ratio, class_counts=self.class_counts)

    def _balanced_subset(self, train_idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The first ``train_size / num_classes`` indices of each class, in their order."""
        per_class, extra = divmod(self.train_size, self.num_classes)
        fewest = int(torch.bincount(labels[train_idx], minlength=self.num_classes).min())
        if extra or self.imbalance_ratio is not None or per_class > fewest:
            raise FmlabError(
                f"data.train_size={self.train_size} cannot be drawn class-balanced: it must be a "
                f"multiple of the {self.num_classes} classes, at most {fewest * self.num_classes} "
                "(the smallest class of the training split times the classes), and without "
                "data.imbalance_ratio. Pick such a size, or null for the whole training split."
            )
        keep = torch.cat(
            [train_idx[labels[train_idx] == c][:per_class] for c in range(self.num_classes)]
        )
        return keep.sort().values  # not grouped by class

    def _loader(
        self, dataset: TensorBatches, batch_size: int, shuffle: bool, balanced: bool = False
    ) -> DataLoader:
        if balanced:
            sampler = ClassBalancedBatchIndices(dataset.tensors[1], batch_size, seed=self.seed)
        else:
            sampler = BatchIndices(len(dataset), batch_size, shuffle=shuffle, seed=self.seed)
        return BatchLoader(  # resumable mid-epoch: Lightning checkpoints its position
            dataset,
            batch_size=None,  # the sampler yields whole batches
            sampler=sampler,
            # Its own generator: starting an epoch must not draw from the global RNG, or a run
            # resumed mid-epoch would see different augmentation than an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        balanced = self.sampling == "class_balanced"
        return self._loader(self.train_set, self.batch_size, shuffle=True, balanced=balanced)

    def val_dataloader(self) -> DataLoader | list:
        return (
            self._loader(self.val_set, self.eval_batch_size, shuffle=False) if self.has_val else []
        )

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # Always (images, labels): Lightning's generic walk over any collection costs more than
        # the copies themselves at batch size 4.
        x, y = batch
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.encoded:
            return batch  # (features, labels): prepared once, by ``encode``
        x, y = batch  # x: (B, 3, 32, 32) uint8 on the training device
        training = self.trainer is not None and self.trainer.training
        if training:
            if self.crop:
                x = random_crop(x, self.crop_padding)
            if self.flip:
                x = random_flip(x)
        x = self.prepare(x)
        if training and self.cutout:
            x = cutout(x, self.cutout)  # after normalising: the square becomes the mean colour
        return x, y

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images → the net's input: resized (after crop and flip, which move whole
        32×32 pixels; cutout counts pixels of the resized image) and normalised."""
        if self.resize is not None:
            x = resize(x, self.resize)  # (B, 3, resize, resize) float pixels in [0, 255]
        if x.device not in self._stats:
            self._stats[x.device] = normalizer(self.mean, self.std, x.device)
        return normalize(x, *self._stats[x.device])

    @property
    def preparation(self) -> dict:
        """What ``prepare`` does, for the keys of caches of prepared images."""
        return {"resize": self.resize, "mean": self.mean, "std": self.std}

    def encode(self, features) -> None:
        """Replace every split's images by ``features(images, split)`` (after ``setup``): a
        frozen backbone's outputs, computed once (``task.cache_features``). Augmentation would
        change them every epoch, so it is refused."""
        if self.crop or self.flip or self.cutout:
            raise FmlabError(
                f"task.cache_features=true computes each image's features once, so it cannot "
                f"train on augmented images (data.crop={self.crop}, data.flip={self.flip}, "
                f"data.cutout={self.cutout}). Add augment=none, or set "
                "task.cache_features=false to run the frozen backbone on every batch."
            )
        for split in ("train", "val", "test"):
            dataset = getattr(self, f"{split}_set")
            if dataset is not None:
                images, labels = dataset.tensors
                setattr(self, f"{split}_set", TensorBatches(features(images, split), labels))
        self.encoded = True
