"""fmlab's GPT as transformers' ``GPT2LMHeadModel``: the same architecture (pre-LayerNorm blocks,
learned positions, tied embeddings), so a weight-for-weight copy gives the same logits.

Where they differ, the copy adapts: GPT-2's Conv1D stores weights as (in, out), torch's Linear as
(out, in); GPT-2 always has biases (zeros stand in for ``bias=False``); its GELU is set to the
exact one fmlab uses (GPT-2's own default is the tanh approximation); the rows that
``vocab_multiple`` pads the embedding with are dropped, so the exported model scores and samples
only real tokens; and a μP net's multipliers are folded into its weights (GPT-2 has none), so
transformers computes the same function.
"""

import math

import torch

from fmlab.nets.gpt import GPT

# fmlab's module name in a block -> GPT-2's
LINEARS = {
    "attn.c_attn": "attn.c_attn",
    "attn.c_proj": "attn.c_proj",
    "mlp.0": "mlp.c_fc",
    "mlp.2": "mlp.c_proj",
}


def gpt2_config(net: GPT, eot_id: int | None):
    from transformers import GPT2Config

    dropout = net.drop.p
    return GPT2Config(
        vocab_size=net.vocab_size,
        n_positions=net.block_size,
        n_embd=net.n_embd,
        n_layer=net.n_layer,
        n_head=net.n_head,
        n_inner=4 * net.n_embd,
        activation_function="gelu",  # nn.GELU(): exact, not GPT-2's default tanh "gelu_new"
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        # GPT-2's defaults (50256) name ids this vocabulary may not have.
        bos_token_id=eot_id,
        eos_token_id=eot_id,
    )


def gpt2_state_dict(net: GPT) -> dict[str, torch.Tensor]:
    """``GPT2LMHeadModel``'s weights (without ``lm_head.weight``: tied to the embedding)."""
    sd = net.state_dict()
    out = {
        "transformer.wte.weight": sd["wte.weight"][: net.vocab_size],  # padding rows dropped
        "transformer.wpe.weight": sd["wpe.weight"],
    }

    def copy(src: str, dst: str, transpose: bool) -> None:
        weight = sd[f"{src}.weight"]
        out[f"{dst}.weight"] = weight.t() if transpose else weight  # Linear (out, in) -> (in, out)
        out[f"{dst}.bias"] = sd.get(f"{src}.bias", torch.zeros(len(sd[f"{src}.weight"])))

    for i in range(net.n_layer):
        src, dst = f"blocks.{i}", f"transformer.h.{i}"
        copy(f"{src}.ln_1", f"{dst}.ln_1", transpose=False)
        copy(f"{src}.ln_2", f"{dst}.ln_2", transpose=False)
        for name, gpt2_name in LINEARS.items():
            copy(f"{src}.{name}", f"{dst}.{gpt2_name}", transpose=True)
    copy("ln_f", "transformer.ln_f", transpose=False)
    out = {k: v.detach().contiguous().clone() for k, v in out.items()}
    if net.parametrization == "mup":
        fold_mup(net, out)
    return out


def fold_mup(net: GPT, sd: dict[str, torch.Tensor]) -> None:
    """μP's multipliers folded into GPT-2's weights, in place: the embeddings (both) times the
    input multiplier; the queries times μP's attention scale over GPT-2's 1/√head_dim; the final
    norm times the output multiplier over the input one (the output layer is the embedding,
    already multiplied)."""
    sd["transformer.wte.weight"] *= net.input_mult
    sd["transformer.wpe.weight"] *= net.input_mult
    query = net.blocks[0].attn.scale * math.sqrt(net.n_embd // net.n_head)
    for i in range(net.n_layer):
        for part in ("weight", "bias"):  # Conv1D (in, 3·out): the queries are the first columns
            sd[f"transformer.h.{i}.attn.c_attn.{part}"][..., : net.n_embd] *= query
    for part in ("weight", "bias"):
        sd[f"transformer.ln_f.{part}"] *= net.output_mult / net.input_mult


def to_gpt2(net: GPT, eot_id: int | None):
    """A ``GPT2LMHeadModel`` with ``net``'s weights, in eval mode."""
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(gpt2_config(net, eot_id))
    missing, unexpected = model.load_state_dict(gpt2_state_dict(net), strict=False)
    # Only the tied head is left out; anything else means the two architectures parted ways.
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"GPT-2 keys do not match: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.eval()
