"""fmlab's Bert as transformers' ``BertForMaskedLM`` or ``BertForSequenceClassification``: both are
Google's BERT (learned positions, post-LN blocks, exact GELU, LayerNorm eps 1e-12, the tied MLM
decoder, the [CLS] pooler dense + tanh), so a weight-for-weight copy gives the same logits.

Where they differ, the copy adapts: fmlab fuses query, key and value into one Linear (split into
three); fmlab has no token-type embeddings (BERT's two rows are zeros, so segment ids add nothing).
What BERT cannot express is refused: ``norm=pre`` (a LayerNorm before each sub-layer and a final
one) and, for classification, ``pool=mean`` (BERT's classifier reads its pooler on [CLS]).
"""

import torch

from fmlab.errors import FmlabError
from fmlab.nets.bert import Bert

# fmlab's module name in a block -> BERT's (the fused qkv is split apart)
LINEARS = {
    "attn.proj": "attention.output.dense",
    "ln_1": "attention.output.LayerNorm",
    "mlp.0": "intermediate.dense",
    "mlp.2": "output.dense",
    "ln_2": "output.LayerNorm",
}


def check_exportable(net: Bert, classifier: bool) -> None:
    """One FmlabError naming the setting BERT has no equivalent for, and the way out."""
    if isinstance(net.ln_f, torch.nn.LayerNorm):
        raise FmlabError(
            "format=hf writes Google's BERT, whose LayerNorms follow each sub-layer; this "
            "checkpoint's Bert has model.norm=pre, which transformers' BERT cannot express. Use "
            "format=safetensors for its plain weights."
        )
    if classifier and net.pooler is None:
        raise FmlabError(
            "format=hf writes a BertForSequenceClassification, whose classifier reads BERT's "
            "pooler on [CLS]; this checkpoint's Bert has model.pool=mean (the mean of the real "
            "tokens), which it cannot express. Use format=safetensors for its plain weights, or "
            "fine-tune with model.pool=cls."
        )


def bert_config(net: Bert, labels: list[str] | None = None):
    from transformers import BertConfig

    block = net.blocks[0]
    n_embd = net.tok_emb.embedding_dim
    dropout = net.drop.p
    return BertConfig(
        vocab_size=net.vocab_size,
        hidden_size=n_embd,
        num_hidden_layers=len(net.blocks),
        num_attention_heads=block.attn.n_head,
        intermediate_size=block.mlp[0].out_features,
        hidden_act="gelu",  # nn.GELU(): the exact one
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        classifier_dropout=dropout,
        max_position_embeddings=net.max_length,
        type_vocab_size=2,  # BERT's own: a tokenizer's pair template may give segment id 1
        layer_norm_eps=1e-12,
        pad_token_id=net.pad_id,
        tie_word_embeddings=True,
        **({"id2label": dict(enumerate(labels))} if labels else {}),
    )


def bert_state_dict(net: Bert, classifier: bool) -> dict[str, torch.Tensor]:
    """BERT's weights (``BertForSequenceClassification``'s if ``classifier``, else
    ``BertForMaskedLM``'s), without the tied decoder weight and bias."""
    sd = net.state_dict()
    n_embd = net.tok_emb.embedding_dim
    out = {
        "bert.embeddings.word_embeddings.weight": sd["tok_emb.weight"],
        "bert.embeddings.position_embeddings.weight": sd["pos_emb.weight"],
        "bert.embeddings.token_type_embeddings.weight": torch.zeros(2, n_embd),
        "bert.embeddings.LayerNorm.weight": sd["emb_ln.weight"],
        "bert.embeddings.LayerNorm.bias": sd["emb_ln.bias"],
    }
    for i in range(len(net.blocks)):
        src, dst = f"blocks.{i}", f"bert.encoder.layer.{i}"
        for kind in ("weight", "bias"):
            q, k, v = sd[f"{src}.attn.qkv.{kind}"].split(n_embd)  # (3C, ...) -> 3 × (C, ...)
            for name, part in (("query", q), ("key", k), ("value", v)):
                out[f"{dst}.attention.self.{name}.{kind}"] = part
            for ours, theirs in LINEARS.items():
                out[f"{dst}.{theirs}.{kind}"] = sd[f"{src}.{ours}.{kind}"]
    for kind in ("weight", "bias"):
        if classifier:
            out[f"bert.pooler.dense.{kind}"] = sd[f"pooler.{kind}"]
            out[f"classifier.{kind}"] = sd[f"classifier.{kind}"]
        else:
            out[f"cls.predictions.transform.dense.{kind}"] = sd[f"mlm.dense.{kind}"]
            out[f"cls.predictions.transform.LayerNorm.{kind}"] = sd[f"mlm.ln.{kind}"]
    if not classifier:
        out["cls.predictions.bias"] = sd["mlm.decoder.bias"]
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def to_bert(net: Bert, labels: list[str] | None = None):
    """``BertForSequenceClassification`` with ``net``'s weights when ``labels`` (the classes, in
    the classifier's order) are given, else ``BertForMaskedLM``; in eval mode."""
    from transformers import BertForMaskedLM, BertForSequenceClassification

    classifier = labels is not None
    check_exportable(net, classifier)
    config = bert_config(net, labels)
    model = (BertForSequenceClassification if classifier else BertForMaskedLM)(config)
    missing, unexpected = model.load_state_dict(bert_state_dict(net, classifier), strict=False)
    # Only the tied decoder is left out; anything else means the two architectures parted ways.
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"BERT keys do not match: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.eval()


def save_wordpiece(tokenizer, out) -> None:
    """fmlab's WordPiece as a ``BertTokenizerFast``: its own ``tokenizer.json`` with BERT's
    ``[CLS] a [SEP] b [SEP]`` template added (fmlab's data adds them itself), so
    ``AutoTokenizer.from_pretrained(out)(text)`` gives the ids an fmlab run read."""
    import json

    from tokenizers import Tokenizer, processors

    from fmlab.data.tokenizers import SPECIAL_IDS, SPECIAL_TOKENS

    backend = Tokenizer.from_str(tokenizer.tokenizer.to_str())
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", SPECIAL_IDS["cls"]), ("[SEP]", SPECIAL_IDS["sep"])],
    )
    (out / "tokenizer.json").write_text(backend.to_str(), encoding="utf-8")
    config = {"tokenizer_class": "BertTokenizerFast", "do_lower_case": True}
    tokens = zip(SPECIAL_IDS, SPECIAL_TOKENS, strict=True)
    config |= {f"{name}_token": token for name, token in tokens}
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
