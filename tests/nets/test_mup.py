"""μP in fmlab's GPT (model.parametrization=mup): the same net as SP at its base width, μP's
per-width rules in the optimizer the language-model task builds, and the config checks."""

from functools import partial

import pytest
import torch

from fmlab.config import checks
from fmlab.errors import FmlabError, UsageError
from fmlab.nets import GPT
from fmlab.tasks import LanguageModel

SIZE = {"vocab_size": 65, "block_size": 16, "n_layer": 2, "n_head": 2, "bias": True}


def task(seed: int, optimizer=None, **options) -> LanguageModel:
    torch.manual_seed(seed)
    optimizer = optimizer or partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.1, eps=1e-8)
    return LanguageModel(GPT(**SIZE, **options), optimizer=optimizer)


def test_mup_at_its_base_width_is_the_sp_net_and_takes_the_same_first_step():
    sp = task(0, n_embd=32)
    mup = task(0, n_embd=32, parametrization="mup", mup_base_width=32)
    assert all(
        torch.equal(a, b)
        for a, b in zip(sp.state_dict().values(), mup.state_dict().values(), strict=True)
    )
    idx = torch.randint(0, 65, (4, 17))
    for model in (sp, mup):
        optimizer = model.configure_optimizers()
        _, loss = model.net(idx[:, :-1], idx[:, 1:])
        loss.backward()
        optimizer.step()
    for (name, a), b in zip(sp.state_dict().items(), mup.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    wider = task(0, n_embd=64, parametrization="mup", mup_base_width=32)  # the check can fail
    assert not torch.equal(wider.net(idx[:, :-1])[0], task(0, n_embd=64).net(idx[:, :-1])[0])


def test_mup_divides_the_hidden_lr_eps_and_init_by_the_width_multiplier():
    lr, eps, decay = 1e-2, 1e-8, 0.1
    model = task(0, n_embd=128, parametrization="mup", mup_base_width=32)  # m = 4
    groups = model.configure_optimizers().param_groups
    net = model.net
    hidden = {id(p) for p in net.blocks.parameters() if p.dim() >= 2}
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in net.parameters())  # each tensor once
    for group in groups:
        ids = {id(p) for p in group["params"]}
        assert group["eps"] == pytest.approx(eps / 4)
        if ids <= hidden:
            assert (group["lr"], group["weight_decay"]) == pytest.approx((lr / 4, decay * 4))
        elif id(net.wte.weight) in ids:
            assert (group["lr"], group["weight_decay"]) == pytest.approx((lr, decay))
        else:  # norms and biases
            assert (group["lr"], group["weight_decay"]) == (pytest.approx(lr), 0.0)
    # The hidden matrices' init std is the SP std over √m; the embeddings keep theirs.
    torch.manual_seed(0)
    sp = GPT(**SIZE, n_embd=128)
    ratio = net.blocks[0].attn.c_attn.weight / sp.blocks[0].attn.c_attn.weight
    torch.testing.assert_close(ratio, torch.full_like(ratio, 0.5))
    assert torch.equal(net.wte.weight, sp.wte.weight)


def test_mup_refuses_an_optimizer_whose_mu_p_rules_differ():
    sgd = partial(torch.optim.SGD, lr=0.1)
    model = task(0, optimizer=sgd, n_embd=64, parametrization="mup", mup_base_width=32)
    with pytest.raises(FmlabError, match="optimizer=adamw"):
        model.configure_optimizers()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.parametrization=mup", "model.mup_base_width=null"], "mup_base_width"),
        (["model.mup_base_width=30"], "multiple of n_head"),
        (["model.parametrization=sp", "model.mup_output_alpha=2"], "stay 1"),
        (["model.parametrization=mu"], "model.parametrization='mu'"),
    ],
)
def test_a_mup_setting_that_cannot_work_is_refused_by_name(overrides, message, compose_cfg):
    cfg = compose_cfg(overrides=["experiment=mutransfer_shakespeare_char", *overrides])
    with pytest.raises(UsageError, match=message):
        checks.check_job(cfg)
