"""BERT: parameter counts of Turc et al. 2019's sizes, bidirectional and padding-invariant
encoding, the tied masked-LM head, masking statistics, the masked-only loss, and a short CPU
pre-training through a real Trainer that lowers the MLM loss."""

import copy
import math

import lightning as L
import pytest
import torch
from conftest import quiet_trainer
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from fmlab.commands.train import build
from fmlab.errors import FmlabError
from fmlab.nets import Bert
from fmlab.tasks import ImageClassifier, MaskedLM
from fmlab.techniques.transfer import head_name

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
V = 40  # ids 5..39 are ordinary tokens


def adamw(params):
    return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)


def tiny_bert(**kwargs) -> Bert:
    sizes = {"n_layer": 2, "n_embd": 32, "n_head": 2, "dropout": 0.0}
    return Bert(V, num_classes=3, pad_id=0, max_length=24, **sizes | kwargs)


def batch(lengths: list[int], T: int, seed: int = 0) -> torch.Tensor:
    """[CLS] tokens [SEP] rows of the given total lengths, padded on the right to T."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(5, V, (n,), generator=g)
        ids[row, 0], ids[row, n - 1] = SPECIAL["cls"], SPECIAL["sep"]
    return ids


# Google's counts (Turc et al. 2019; BERT-Base 110.1M) are of the encoder, pooler and MLM head at
# BERT's vocabulary; without the MLM head those read 4.4M / 11.2M / 28.8M / 110M (Hugging Face's).
# This Bert has no token-type embeddings (2·n_embd fewer), so the counts agree within 1%.
SIZES = {
    "bert_tiny": (4.4e6, 4.4e6),
    "bert_mini": (11.2e6, 11.3e6),
    "bert_small": (28.8e6, 29.1e6),
    "bert_base": (110e6, 110.1e6),
}


@pytest.mark.parametrize("name", SIZES)
def test_parameter_counts_are_turc_et_als(name, compose_cfg):
    cfg = compose_cfg("train", [f"model={name}"])
    with torch.device("meta"):  # no memory, no initialisation
        net = instantiate(cfg.model, vocab_size=30522, num_classes=2, pad_id=0, max_length=512)
    layers, H = cfg.model.n_layer, cfg.model.n_embd
    assert H // cfg.model.n_head == 64  # 64-wide heads at every size
    # Embeddings (tokens, positions, their LayerNorm); per layer QKV, output, MLP and 2 LayerNorms.
    layer = 4 * H * H + 4 * H + 2 * 4 * H * H + 5 * H + 4 * H
    encoder = (30522 + 512) * H + 2 * H + layers * layer + H * H + H  # + the pooler
    mlm = H * H + H + 2 * H + 30522  # dense, LayerNorm, decoder bias (its weight is tied)
    count = sum(p.numel() for p in net.parameters())
    head = sum(p.numel() for p in net.classifier.parameters())
    assert count - head == encoder + mlm
    without_mlm, with_mlm = SIZES[name]
    assert encoder == pytest.approx(without_mlm, rel=0.01)
    assert encoder + mlm == pytest.approx(with_mlm, rel=0.01)


def test_the_mlm_decoder_is_the_token_embedding():
    net = tiny_bert()
    assert net.mlm.decoder.weight is net.tok_emb.weight
    assert net.mlm.decoder.bias is not None and net.mlm.decoder.bias.shape == (V,)
    assert head_name(net) == "classifier"  # what ImageClassifier freezes around or gives head_lr


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_the_encoder_is_bidirectional(norm):
    torch.manual_seed(0)
    net = tiny_bert(norm=norm).eval()
    ids = batch([12, 12], 12)
    changed = ids.clone()
    changed[:, 9] = 5 + (changed[:, 9] - 4) % (V - 5)  # a later token, another ordinary id
    before, after = net.encode(ids), net.encode(changed)
    assert not torch.allclose(before[:, :9], after[:, :9], atol=1e-4)  # earlier positions see it


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_padding_changes_no_real_position(norm, pool):
    torch.manual_seed(0)
    net = tiny_bert(norm=norm, pool=pool).eval()
    ids = batch([7, 10], 10)
    padded = torch.cat([ids, torch.zeros(2, 8, dtype=torch.long)], 1)  # 8 more pads
    real = ids != 0
    assert torch.allclose(net.encode(ids)[real], net.encode(padded)[:, :10][real], atol=1e-5)
    assert torch.allclose(net(ids), net(padded), atol=1e-5)


@pytest.mark.parametrize(("norm", "pool"), [("post", "cls"), ("pre", "mean")])
def test_both_heads_forward_and_backward(norm, pool):
    torch.manual_seed(0)
    net = tiny_bert(norm=norm, pool=pool, dropout=0.1)
    ids = batch([5, 9, 12], 12)
    logits = net(ids)
    assert logits.shape == (3, 3)
    chosen = torch.zeros_like(ids, dtype=torch.bool)
    chosen[:, 1:4] = True
    vocab_logits = net.mlm_logits(ids, chosen)
    assert vocab_logits.shape == (9, V) and net.encode(ids).shape == (3, 12, 32)
    (logits.sum() + vocab_logits.logsumexp(-1).sum()).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_a_sequence_longer_than_max_length_is_refused():
    with pytest.raises(ValueError, match="longer than max_length=24"):
        tiny_bert()(batch([30], 30))


def task(**kwargs) -> MaskedLM:
    return MaskedLM(tiny_bert(), adamw, **{"special_ids": SPECIAL} | kwargs)


def test_masking_statistics():
    ids = batch([int(n) for n in torch.randint(3, 64, (2000,))], 64)
    maskable = (ids > 4).sum().item()
    inputs, chosen = task().mask(ids, torch.Generator().manual_seed(0))
    assert not chosen[ids <= 4].any()  # never [PAD], [CLS], [SEP]
    assert torch.equal(inputs[~chosen], ids[~chosen])
    assert chosen.sum().item() / maskable == pytest.approx(0.15, abs=0.005)
    n = chosen.sum().item()
    masked = (inputs == SPECIAL["mask"]) & chosen
    randomised = (inputs != ids) & ~masked
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.015)
    # A random token equals the original once in V - 5: (1 - 1/35) of the 10% change.
    assert randomised.sum().item() / n == pytest.approx(0.1 * 34 / 35, abs=0.01)
    assert (inputs[randomised] > 4).all()
    # All chosen randomised: the replacements are ordinary tokens only, every one of them drawn.
    inputs, chosen = task(mask_token_frac=0.0, random_token_frac=1.0).mask(
        ids, torch.Generator().manual_seed(1)
    )
    assert (inputs[chosen] > 4).all() and len(inputs[chosen].unique()) == V - 5


def test_the_same_seed_gives_the_same_masks():
    ids = batch([20] * 8, 24)
    first = task().mask(ids, torch.Generator().manual_seed(3))
    again = task().mask(ids, torch.Generator().manual_seed(3))
    other = task().mask(ids, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])


def test_whole_word_masking_takes_a_word_with_its_pieces():
    continuation = torch.zeros(V, dtype=torch.bool)
    continuation[20:] = True  # ids 20..39 continue a word (WordPiece's ## pieces)
    masked_lm = task(whole_word=True, special_ids=None)
    masked_lm.set_vocabulary(SPECIAL, continuation_ids=continuation)
    ids = batch([int(n) for n in torch.randint(3, 24, (500,))], 24)
    _, chosen = masked_lm.mask(ids, torch.Generator().manual_seed(0))
    pieces = (ids >= 20) & (torch.arange(24) > 1)
    previous = chosen.roll(1, 1)
    starts_word = (ids > 4) & (ids < 20)
    after_word = torch.cat([torch.zeros(500, 1, dtype=torch.bool), (ids[:, :-1] > 4)], 1)
    follows = pieces & after_word  # a piece right after a token of its word
    assert torch.equal(chosen[follows], previous[follows])  # chosen together with its word
    assert chosen[starts_word].float().mean().item() == pytest.approx(0.15, abs=0.02)
    with pytest.raises(FmlabError, match="continuation_ids"):
        task(whole_word=True)


def test_the_loss_reads_only_the_chosen_positions():
    torch.manual_seed(0)
    masked_lm = task()
    ids = batch([16] * 4, 16)
    _, chosen = masked_lm.mask(ids, torch.Generator().manual_seed(0))
    hidden = torch.randn(4, 16, 32)
    loss, correct, count = masked_lm.mlm_loss(hidden, ids, chosen)
    assert count == chosen.sum().item() > 0 and torch.isfinite(loss)
    other_hidden = torch.where(chosen.unsqueeze(-1), hidden, torch.randn(4, 16, 32))
    other_ids = torch.where(chosen, ids, torch.randint(5, V, ids.shape))
    again = masked_lm.mlm_loss(other_hidden, other_ids, chosen)
    assert torch.equal(loss, again[0]) and torch.equal(correct, again[1])
    assert not torch.equal(loss, masked_lm.mlm_loss(hidden + 1, ids, chosen)[0])
    # Every trained parameter gets a gradient (none that DDP would wait for); the class head is
    # frozen.
    masked_lm.step(ids, torch.Generator().manual_seed(0))[0].backward()
    trained = [n for n, p in masked_lm.net.named_parameters() if p.requires_grad]
    assert all(masked_lm.net.get_parameter(n).grad is not None for n in trained)
    assert not any(n.startswith(("pooler", "classifier")) for n in trained)
    # Nothing chosen: a zero loss, not NaN.
    assert masked_lm.mlm_loss(hidden, ids, torch.zeros_like(chosen))[0].item() == 0.0


class CountingText(L.LightningDataModule):
    """Rows [CLS] a a+1 a+2 ... [SEP] (ids wrapping in 5..V-1), of random lengths: a masked token
    is told by its neighbours. Labels ride along, as in labelled text, and are ignored."""

    special_ids = SPECIAL

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n, T = 1024, 20
        start = torch.randint(0, V - 5, (n, 1), generator=g)
        ids = 5 + (start + torch.arange(T)) % (V - 5)
        lengths = torch.randint(8, T + 1, (n, 1), generator=g)
        ids[:, 0] = SPECIAL["cls"]
        ids = torch.where(torch.arange(T) == lengths - 1, SPECIAL["sep"], ids)
        ids = ids.masked_fill(torch.arange(T) >= lengths, SPECIAL["pad"])
        self.sets = {"train": ids[:896], "val": ids[896:]}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ids = self.sets[split]
        return DataLoader(TensorDataset(ids, torch.zeros(len(ids))), batch_size=32, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)


def test_a_short_cpu_pretraining_lowers_the_mlm_loss(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is fastest, and immune to a loaded CPU
    try:
        L.seed_everything(0)
        data = CountingText()
        masked_lm = MaskedLM(tiny_bert(dropout=0.0), adamw)  # special ids from the data
        best = ModelCheckpoint(tmp_path, monitor="val/acc", mode="max")  # as callbacks=default
        trainer = quiet_trainer(tmp_path, max_epochs=12, callbacks=[best], log_every_n_steps=10)
        # A copy: validation leaves inference-mode tensors in the metrics, which fit refuses.
        before = quiet_trainer().validate(copy.deepcopy(masked_lm), datamodule=data, verbose=False)
        before = before[0]
        trainer.fit(masked_lm, datamodule=data)
        after = trainer.validate(masked_lm, datamodule=data, verbose=False)[0]
    finally:
        torch.set_num_threads(threads)
    assert before["val/mlm_loss"] == pytest.approx(math.log(V), abs=0.3)  # chance at init
    # Seed 0, one thread: 3.70 → 1.15, accuracy 0.04 → 0.61.
    assert after["val/mlm_loss"] < before["val/mlm_loss"] - 1.5
    assert after["val/mlm_acc"] > 0.35 and after["val/acc"] == after["val/mlm_acc"]
    assert after["val/ppl"] == pytest.approx(math.exp(after["val/mlm_loss"]), rel=1e-4)
    assert after["val/loss"] == after["val/mlm_loss"]
    again = trainer.validate(masked_lm, datamodule=data, verbose=False)[0]
    assert again == after  # the same masks every validation
    checkpoint = torch.load(best.best_model_path, weights_only=True)  # plain hyper-parameters
    assert checkpoint["hyper_parameters"]["mask_rate"] == 0.15


def test_bert_trains_through_the_classification_task():
    torch.manual_seed(0)
    net = tiny_bert()
    classifier = ImageClassifier(net, adamw, freeze_backbone=True)
    ids, labels = batch([6, 9, 12, 12], 12), torch.tensor([0, 1, 2, 1])
    loader = DataLoader(TensorDataset(ids, labels), batch_size=4)
    before = net.tok_emb.weight.clone()
    quiet_trainer(max_steps=2, enable_checkpointing=False).fit(classifier, loader)
    assert torch.equal(net.tok_emb.weight, before)  # frozen: only the classifier trained


def test_masked_lm_composes_with_bert_and_labelled_text(compose_cfg, tmp_path):
    (tmp_path / "labels.tsv").write_text("a\tsome text\nb\tother text\n" * 5)
    overrides = ["data=labelled_text", f"data.path={tmp_path / 'labels.tsv'}", "model=bert_tiny"]
    overrides += ["task=masked_lm", "optimizer=adamw", "scheduler=warmup_cosine"]
    datamodule, masked_lm = build(compose_cfg("train", overrides))
    assert isinstance(masked_lm, MaskedLM) and isinstance(masked_lm.net, Bert)
    assert masked_lm.hparams.mask_rate == 0.15 and masked_lm.hparams.special_ids is None
    quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0, enable_checkpointing=False).fit(
        masked_lm, datamodule=datamodule
    )
    assert masked_lm.tables["mask_id"] == datamodule.special_ids["mask"]  # read from the data


def test_masked_lm_refuses_a_net_without_an_mlm_head_and_bad_fractions():
    from fmlab.nets import SequenceClassifier

    with pytest.raises(FmlabError, match="model=bert_"):
        MaskedLM(SequenceClassifier(V, 3, 0, 24), adamw)
    with pytest.raises(FmlabError, match="exceed 1"):
        task(mask_token_frac=0.8, random_token_frac=0.3)


def test_layer_wise_lr_decay_scales_each_layer_below_the_top():
    net = tiny_bert()
    task = ImageClassifier(net, torch.optim.AdamW, layer_lr_decay=0.5)
    task.optimizer_factory = lambda groups: torch.optim.AdamW(groups, lr=1.0)
    task.optimizer_factory.keywords = {"lr": 1.0}  # as Hydra's partial carries it
    lr_of = {id(p): g["lr"] for g in task.configure_optimizers().param_groups for p in g["params"]}
    # Clark et al. 2020: the head at lr, the top block at lr·0.5, …, the embeddings at lr·0.5³.
    assert lr_of[id(net.tok_emb.weight)] == 0.125 and lr_of[id(net.pos_emb.weight)] == 0.125
    assert lr_of[id(net.blocks[0].attn.qkv.weight)] == 0.25
    assert lr_of[id(net.blocks[1].mlp[0].weight)] == 0.5 and lr_of[id(net.classifier.weight)] == 1.0
    with pytest.raises(FmlabError, match="layer_lr_decay=0.5: ConvNet does not number"):
        from fmlab.nets import ConvNet

        ImageClassifier(ConvNet(10), torch.optim.AdamW, layer_lr_decay=0.5)
