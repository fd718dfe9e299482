"""Sequence nets: every model YAML forwards and backwards; GPT reference checks; the schedule."""

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from fmlab import CONF_DIR
from fmlab.commands.sample import generate
from fmlab.nets import GPT, RecurrentLM
from fmlab.techniques.rebuild import build_net
from fmlab.techniques.schedules import WarmupCosine

LM_MODELS = ["gpt", "lstm", "gru", "rnn"]
SEQ_MODELS = sorted(p.stem for p in Path(CONF_DIR, "model").glob("seq_*.yaml"))


@pytest.mark.parametrize("name", LM_MODELS)
def test_language_model_forward_backward(name, compose_cfg):
    cfg = compose_cfg("train", [f"model={name}"])
    net = build_net(cfg.model, {"vocab_size": 50, "block_size": 32})
    idx = torch.randint(50, (3, 32))
    logits, loss = net(idx, idx.roll(-1, 1))
    assert logits.shape == (3, 32, 50) and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net(idx)[1] is None


@pytest.mark.parametrize("name", SEQ_MODELS)
def test_sequence_classifier_forward_backward(name, compose_cfg):
    cfg = compose_cfg("train", [f"model={name}"])
    net = instantiate(cfg.model, vocab_size=30, num_classes=4, pad_id=29, max_length=20)
    idx = torch.randint(29, (5, 20))
    idx[0, 3:] = 29  # a short, padded sequence
    logits = net(idx)
    assert logits.shape == (5, 4)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    # Padding after the text does not change its prediction.
    longer = idx[:1].clone()
    longer[0, 3:] = 29
    assert torch.allclose(net.eval()(longer), net(idx[:1]), atol=1e-5)


def test_gpt_shakespeare_char_has_nanogpts_parameter_count(compose_cfg):
    cfg = compose_cfg("train", ["experiment=gpt_shakespeare_char"])
    net = instantiate(cfg.model, vocab_size=65, block_size=cfg.data.block_size)
    assert round(net.num_params() / 1e6, 2) == 10.65  # nanoGPT prints "10.65M"
    assert net.num_params() == 10_646_784


def test_causal_masking():
    torch.manual_seed(0)
    net = GPT(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=32).eval()
    idx = torch.randint(20, (2, 16))
    changed = idx.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 20  # change every token from position 9 on
    before, after = net(idx)[0], net(changed)[0]
    assert torch.allclose(before[:, :9], after[:, :9], atol=1e-6)
    assert not torch.allclose(before[:, 9:], after[:, 9:])


@pytest.mark.parametrize("net", [GPT(66, 64, 4, 4, 128), RecurrentLM(66, "lstm", 128, 224)])
def test_loss_at_initialisation_is_about_ln_vocab(net):
    torch.manual_seed(0)
    idx = torch.randint(66, (8, 65))
    _, loss = net(idx[:, :-1], idx[:, 1:])
    assert abs(loss.item() - math.log(66)) < 0.1


def test_generate_returns_the_requested_number_of_tokens():
    net = RecurrentLM(10, "gru", 8, 8).eval()
    out = generate(net, torch.zeros(2, 3, dtype=torch.long), 25, block_size=8, top_k=3)
    assert out.shape == (2, 28) and out.max() < 10


def test_greedy_generation_takes_the_most_likely_token_whatever_the_seed():
    torch.manual_seed(0)
    net = GPT(10, 8, n_layer=1, n_head=2, n_embd=16).eval()
    idx = torch.zeros(2, 3, dtype=torch.long)
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        runs.append(generate(net, idx, 12, block_size=8, temperature=5.0, top_k=3, greedy=True))
    assert torch.equal(runs[0], runs[1])
    expected = idx
    with torch.no_grad():
        for _ in range(12):  # the context cropped to block_size, as generate does
            next_id = net(expected[:, -8:])[0][:, -1].argmax(-1, keepdim=True)
            expected = torch.cat((expected, next_id), dim=1)
    assert torch.equal(runs[0], expected)


def test_warmup_cosine_is_nanogpts_get_lr():
    schedule = WarmupCosine(lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000)

    def get_lr(it):  # nanoGPT train.py
        if it < 100:
            return 1e-3 * (it + 1) / (100 + 1)
        if it > 2000:
            return 1e-4
        coeff = 0.5 * (1.0 + math.cos(math.pi * (it - 100) / (2000 - 100)))
        return 1e-4 + coeff * (1e-3 - 1e-4)

    for it in (0, 50, 99, 100, 1000, 1999, 2000, 2500):
        assert schedule(it) * 1e-3 == pytest.approx(get_lr(it))


def test_recurrent_state_is_carried_only_when_asked():
    torch.manual_seed(0)
    net = RecurrentLM(10, "lstm", 8, 8, carry_state=True).eval()
    idx = torch.randint(10, (2, 5))
    first, second = net(idx)[0], net(idx)[0]
    assert not torch.allclose(first, second)  # the second call started from the first's state
    net.reset_state()
    assert torch.allclose(net(idx)[0], first)
    assert net(idx[:1])[0].shape == (1, 5, 10)  # another batch size starts afresh
    net.carry_state = False
    assert torch.allclose(net(idx)[0], first)
