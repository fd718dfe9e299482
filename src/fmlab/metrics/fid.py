"""Feature extractors for FID/KID: Inception from a local weights file, or a fmlab-trained CIFAR-10
classifier's penultimate layer.

The standard Inception features (torch-fidelity's ``pt_inception-2015-12-05``) cannot be downloaded
here, so a classifier trained by fmlab itself stands in. The two kinds of numbers are not
comparable: every metric carries the extractor's name (``fid_inception`` vs ``fid_convnet``) and the
run record says which checkpoint (path and sha256) produced it.

Every extractor takes float images (B, 3, H, W) in [0, 1] and returns (B, num_features).
"""

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from fmlab import CONF_DIR
from fmlab.errors import FmlabError
from fmlab.run import cache
from fmlab.run.checkpoints import load_checkpoint
from fmlab.run.files import file_sha256
from fmlab.techniques.rebuild import rebuild_net
from hydra_plugins.fmlab_optuna_sweeper import trials

log = logging.getLogger(__name__)

# The recipe of the classifier trained when no extractor is given (conf/experiment/<this>.yaml).
DEFAULT_RECIPE = "fid_convnet"


class ClassifierFeatures(nn.Module):
    """The input of a classifier's last linear layer, on images normalised as it was trained."""

    def __init__(self, net: nn.Module, mean, std) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise FmlabError(f"{type(net).__name__} has no linear layer to take features before")
        self.head = linears[-1]
        self.num_features = self.head.in_features
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        return super().train(False)  # batch-norm statistics of the classifier stay fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = []
        hook = self.head.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
        try:
            self.net((x - self.mean) / self.std)
        finally:
            hook.remove()
        return seen[-1].flatten(1)  # (B, num_features)


class InceptionFeatures(nn.Module):
    """torch-fidelity's FID Inception-v3 (2048-d pool features) from a local weights file."""

    def __init__(self, weights: str) -> None:
        super().__init__()
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FmlabError(
                f"task.inception_weights={weights!r} does not exist. Put torch-fidelity's "
                "pt_inception-2015-12-05-6726825d.pth there (https://github.com/toshas/"
                "torch-fidelity/releases), or set task.fid_features=auto to use fmlab's "
                "CIFAR-10 classifier features instead."
            )
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3

            self.inception = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=["2048"],
                feature_extractor_weights_path=str(path),
            )
        except Exception as err:  # torch-fidelity missing, or a file that is not those weights
            raise FmlabError(
                f"Inception features could not be built from {path} ({type(err).__name__}: "
                f"{err}). They need `pip install torch-fidelity` and its FID Inception weights "
                "file; or set task.fid_features=auto for fmlab's classifier features."
            ) from err
        self.num_features = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inception((x * 255).round().to(torch.uint8))  # it expects uint8 pixels


def load_classifier(path: str | Path) -> tuple[ClassifierFeatures, dict]:
    """A fmlab classification checkpoint as features, rebuilt from its own run config."""
    path = Path(path).expanduser()
    checkpoint = load_checkpoint(path, key="task.fid_features")  # plain data, or refused by name
    config = checkpoint["hyper_parameters"]["config"]
    cfg = OmegaConf.create(config)
    net = rebuild_net(checkpoint, key="task.fid_features")
    features = ClassifierFeatures(net, cfg.data.mean, cfg.data.std)
    info = {
        "kind": "classifier",
        "checkpoint": str(path.resolve()),
        "sha256": file_sha256(path),
        "model": cfg.model._target_,
        "num_features": features.num_features,
        "trained_data": config["data"].get("data_dir"),
    }
    return features, info


def recipe_key(data_fingerprint: str) -> str:
    """What the cached classifier depends on: its recipe's text and the data it learns from."""
    text = (Path(CONF_DIR) / "experiment" / f"{DEFAULT_RECIPE}.yaml").read_text()
    return hashlib.sha256(f"{text}\n{data_fingerprint}".encode()).hexdigest()[:12]


def default_classifier(data_dir: str, data_fingerprint: str, cache_dir: str) -> Path:
    """The checkpoint of ``experiment=fid_convnet`` on this data, trained by fmlab-train once (in
    a child process, so this run's random state and loggers are untouched) and then reused: a
    cache (fmlab.run.cache) that the jobs of a sweep train once, not once each, and that is trained
    again if its files fail their check."""
    folder = Path(cache_dir).expanduser() / f"{DEFAULT_RECIPE}-{recipe_key(data_fingerprint)}"
    cache.ensure(folder, lambda run_dir: _train(run_dir, data_dir), "FID feature classifier")
    return folder / "checkpoints" / "last.ckpt"


def _train(run_dir: Path, data_dir: str) -> dict:
    """Trains the classifier into ``run_dir`` (continuing what an interrupted attempt left)."""
    log.info("FID features: training %s once into %s", DEFAULT_RECIPE, run_dir)
    cmd = [
        str(Path(sys.executable).with_name("fmlab-train")),
        f"experiment={DEFAULT_RECIPE}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        "logger=csv",
    ]
    # Not a trial of the Optuna search this job may be one of: the child reports to no study.
    env = {k: v for k, v in os.environ.items() if k not in trials.ENV}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not (run_dir / "checkpoints" / "last.ckpt").is_file():
        raise FmlabError(
            f"training the FID feature classifier failed (exit {proc.returncode}); command: "
            f"{' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return {"recipe": DEFAULT_RECIPE, "data_dir": data_dir}


def build_features(
    features: str, inception_weights: str | None, datamodule, cache_dir: str
) -> tuple[nn.Module, str, dict]:
    """(extractor, name for metric keys, record) for ``task.fid_features``: ``inception``,
    ``auto`` or the path of a fmlab classifier checkpoint."""
    if features == "inception":
        if not inception_weights:
            raise FmlabError(
                "task.fid_features=inception needs task.inception_weights=<path of torch-fidelity's"
                " pt_inception-2015-12-05-6726825d.pth>; it cannot be downloaded here."
            )
        extractor = InceptionFeatures(inception_weights)  # refuses a missing or unusable file
        path = Path(inception_weights).expanduser().resolve()
        info = {"kind": "inception", "weights": str(path), "sha256": file_sha256(path)}
        return extractor, "inception", {**info, "num_features": 2048}
    if features == "auto":
        record = getattr(datamodule, "record", {}) or {}
        folder = getattr(datamodule, "folder", None)
        if folder is None or "fingerprint" not in record:
            raise FmlabError(
                "task.fid_features=auto trains a CIFAR-10 classifier and needs the CIFAR-10 data "
                "module; give a classifier checkpoint path or `inception` instead."
            )
        path = default_classifier(str(folder.parent), record["fingerprint"], cache_dir)
        extractor, info = load_classifier(path)
        info["recipe"] = DEFAULT_RECIPE
    else:
        extractor, info = load_classifier(features)
    name = info["model"].rsplit(".", 1)[-1].lower()  # fmlab.nets.ConvNet → convnet
    return extractor, name, info
