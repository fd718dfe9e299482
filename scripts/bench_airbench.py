"""airbench94 on this GPU: the reference beside experiment=cifar10_fast, on the same CIFAR-10.

airbench94 (Jordan 2024, the `airbench` package 0.1.8 from PyPI) reaches 94.01% test accuracy
(with its test-time augmentation) in 3.83 s on an A100. This runs its own `train94` after one
warm-up, ``--runs`` times, and writes the test accuracy and airbench's own training time of each
run as JSON. airbench reads CIFAR-10 from ./cifar10/{train,test}.pt and would download
torchvision's copy otherwise, so those files are first written from the official-format folder
fmlab trains on (FMLAB_DATA_DIR), into ``--work``, which becomes the working directory.

    FMLAB_DATA_DIR=/path/holding/cifar-10-batches-py python scripts/bench_airbench.py \
        --runs 3 --work /tmp/airbench --json airbench.json

Without CUDA (airbench runs on nothing else) it only writes and loads the data, and says so.
"""

import argparse
import json
import os
import pickle
from pathlib import Path

import numpy as np
import torch

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_tensors(batches: Path, folder: Path) -> None:
    """train.pt and test.pt as airbench saves them from torchvision: uint8 (N, 32, 32, 3) images
    (HWC), int64 labels, the class names."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    for split, names in splits.items():
        images, labels = [], []
        for name in names:
            with open(batches / name, "rb") as f:
                entry = pickle.load(f, encoding="bytes")
            images.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels += entry[b"labels"]
        hwc = torch.from_numpy(np.concatenate(images).transpose(0, 2, 3, 1).copy())
        data = {"images": hwc, "labels": torch.tensor(labels), "classes": CLASSES}
        torch.save(data, folder / f"{split}.pt")


def train_runs(runs: int) -> dict:
    """airbench's warm-up, then ``runs`` trainings; airbench prints its table and returns only the
    net, so its final row (accuracy with test-time augmentation, seconds) is read as printed."""
    import airbench
    import airbench.utils

    finals = []
    printed = airbench.utils.print_training_details

    def keep_final(variables: dict, is_final_entry: bool) -> None:
        if is_final_entry:
            finals.append((variables["tta_val_acc"], variables["total_time_seconds"]))
        printed(variables, is_final_entry)

    airbench.utils.print_training_details = keep_final
    airbench.warmup94()
    for run in range(runs):
        airbench.train94(run=run)
    acc, seconds = (list(v) for v in zip(*finals, strict=True))
    return {
        "status": "ok",
        "runs": runs,
        "test_acc": acc,
        "train_s": seconds,
        "mean_test_acc": sum(acc) / runs,
        "mean_train_s": sum(seconds) / runs,
        "gpu": torch.cuda.get_device_name(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, required=True, help="holds cifar10/{train,test}.pt")
    parser.add_argument("--json", type=Path, required=True, help="where the results go")
    args = parser.parse_args()

    batches = Path(os.environ.get("FMLAB_DATA_DIR", "data")) / "cifar-10-batches-py"
    write_tensors(batches, args.work / "cifar10")
    os.chdir(args.work)  # airbench's loaders open the relative folder "cifar10"
    if torch.cuda.is_available():
        result = train_runs(args.runs)
    else:
        import airbench

        test = airbench.CifarLoader("cifar10", train=False, gpu="cpu")
        result = {"status": "skipped", "note": "airbench94 runs on CUDA only; data loaded"}
        result["test_images"] = len(test.images)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
