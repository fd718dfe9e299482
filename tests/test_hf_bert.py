"""fmlab's BERT and Hugging Face's, offline: fmlab's Bert exported as BertForMaskedLM and
BertForSequenceClassification (same logits on a padded batch), its WordPiece tokenizer as a
BertTokenizerFast (same ids), settings BERT cannot express refused by name. Every model is built
from a config at width 32 and saved into a temporary folder: nothing is downloaded."""

import json

import pytest
import torch

from fmlab.data.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer
from fmlab.errors import FmlabError
from fmlab.hub.bert import save_wordpiece, to_bert
from fmlab.nets import Bert

transformers = pytest.importorskip("transformers")

V = 40  # ids 5..39 are ordinary tokens
SENTENCES = [  # SST-2's style: lower-cased words, spaced punctuation, an accent, an unknown word
    "it 's a charming and often affecting journey . ",
    "the movie is , as a whole , a naïve mess",
    "a gorgeous , witty , seductive movie .",
]


def perturbed_bert(**kwargs) -> Bert:
    """A tiny Bert whose every weight is nudged off its initial value: a tensor copied to the
    wrong place, or a zero bias left out, would show in the logits."""
    torch.manual_seed(0)
    sizes = {"n_layer": 2, "n_embd": 32, "n_head": 2, "dropout": 0.1}
    net = Bert(V, num_classes=3, pad_id=0, max_length=24, **sizes | kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def padded_batch() -> torch.Tensor:
    """[CLS] tokens [SEP] rows of 12, 7 and 3 tokens, padded with 0 to 12."""
    idx = torch.randint(5, V, (3, 12), generator=torch.Generator().manual_seed(1))
    for row, n in enumerate([12, 7, 3]):
        idx[row, 0], idx[row, n - 1] = 2, 3
        idx[row, n:] = 0
    return idx


def test_bert_as_hf_gives_the_same_mlm_and_class_logits_on_a_padded_batch():
    net, idx = perturbed_bert(), padded_batch()
    real = idx != 0
    with torch.no_grad():
        mlm = to_bert(net)
        assert isinstance(mlm, transformers.BertForMaskedLM)
        theirs = mlm(input_ids=idx, attention_mask=real.long()).logits[real]  # (N, V)
        torch.testing.assert_close(theirs, net.mlm_logits(idx, real), atol=1e-5, rtol=1e-5)

        classifier = to_bert(net, labels=["neg", "neutral", "pos"])
        assert classifier.config.id2label == {0: "neg", 1: "neutral", 2: "pos"}
        theirs = classifier(input_ids=idx, attention_mask=real.long()).logits  # (3, 3)
        torch.testing.assert_close(theirs, net(idx), atol=1e-5, rtol=1e-5)
        # Segment ids add nothing (fmlab's Bert has none): a pair template's 1s change no logit.
        segments = classifier(input_ids=idx, attention_mask=real, token_type_ids=real.long())
        torch.testing.assert_close(segments.logits, net(idx), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "setting,labels,named",
    [({"norm": "pre"}, None, "model.norm=pre"), ({"pool": "mean"}, ["a", "b"], "model.pool=mean")],
)
def test_what_bert_cannot_express_is_refused_by_name(setting, labels, named):
    with pytest.raises(FmlabError, match=f"{named}.*format=safetensors"):
        to_bert(perturbed_bert(**setting), labels)


def test_pool_mean_still_exports_the_masked_lm():
    net, idx = perturbed_bert(pool="mean"), padded_batch()
    real = idx != 0
    with torch.no_grad():
        theirs = to_bert(net)(input_ids=idx, attention_mask=real.long()).logits[real]
        torch.testing.assert_close(theirs, net.mlm_logits(idx, real), atol=1e-5, rtol=1e-5)


def test_the_wordpiece_tokenizer_reads_the_same_ids_in_transformers(tmp_path):
    corpus = SENTENCES * 3 + ["the film 's charming , affecting and witty ."] * 3
    tokenizer = WordPieceTokenizer.train(corpus, vocab_size=80)
    save_wordpiece(tokenizer, tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert theirs.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    assert (theirs.pad_token_id, theirs.mask_token_id) == (0, 4)
    texts = [*SENTENCES, "Naive, UNSEEN ψ words!"]  # accents, case, a character never seen
    ours = [[2, *tokenizer.encode(s).tolist(), 3] for s in texts]  # as fmlab's data adds them
    assert theirs(texts)["input_ids"] == ours
    assert 1 in ours[-1]  # ψ: [UNK] for both
    pair = theirs(SENTENCES[0], SENTENCES[2])["input_ids"]
    assert pair == [*ours[0], *ours[2][1:]]  # [CLS] a [SEP] b [SEP], as fmlab's pairs
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizerFast"
