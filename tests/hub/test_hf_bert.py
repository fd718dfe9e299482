"""fmlab's BERT and Hugging Face's, offline: fmlab's Bert exported as BertForMaskedLM and
BertForSequenceClassification (same logits on a padded batch), its WordPiece tokenizer as a
BertTokenizerFast (same ids), settings BERT cannot express refused by name; a Hugging Face BERT
pre-trained on by task=masked_lm (model=hf_masked_lm), and an exported fmlab BERT scoring the
same val/mlm_loss there as in fmlab. Every model is built from a config at width 32 and saved
into a temporary folder: nothing is downloaded."""

import json

import pytest
import torch
from conftest import quiet_trainer, run_cli, write_glue
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_hf import OFFLINE, export_cli

from fmlab.commands.train import build, train
from fmlab.data.tokenizers import SPECIAL_TOKENS, WordPieceTokenizer, saved_state, saved_tokenizer
from fmlab.errors import FmlabError
from fmlab.hub.bert import save_wordpiece, to_bert
from fmlab.hub.models import HFMaskedLM
from fmlab.nets import Bert
from fmlab.techniques.rebuild import rebuild_net

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
    assert SPECIAL_TOKENS.index("[UNK]") in ours[-1]  # ψ: [UNK] for both
    pair = theirs(SENTENCES[0], SENTENCES[2])["input_ids"]
    assert pair == [*ours[0], *ours[2][1:]]  # [CLS] a [SEP] b [SEP], as fmlab's pairs
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizerFast"


def hf_masked_lm(model, glue: list[str]) -> list[str]:
    """model=hf_masked_lm pre-trained on by task=masked_lm, tokenising with its own tokenizer."""
    overrides = ["model=hf_masked_lm", f"model.name_or_path={model}", f"data.tokenizer=hf:{model}"]
    return [*overrides, "task=masked_lm", "optimizer=adamw", *glue, "test=false"]


@pytest.fixture
def glue(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    train_file, dev_file = write_glue(data / "train.tsv", n=48), write_glue(data / "dev.tsv", n=24)
    return [
        "data=sst2",
        f"data.train_file={train_file}",
        f"data.val_file={dev_file}",
        "data.vocab_size=60",
        "data.batch_size=8",
        "data.max_length=16",
        "trainer=cpu",
        "trainer.max_steps=3",
        "logger=none",
        "optimized_metric=val/mlm_loss",
    ]


def test_hf_masked_lm_trains_with_its_own_special_ids(hf_bert_dir, glue, compose_cfg):
    cfg = compose_cfg("train", hf_masked_lm(hf_bert_dir, glue))
    datamodule, task = build(cfg)
    special = datamodule.special_ids  # the tokenizer's, not fmlab's 0..4
    tokenizer = datamodule.tokenizer.tokenizer
    assert special == {k: tokenizer.token_to_id(f"[{k.upper()}]") for k in special}
    assert special["cls"] > 4 and special["pad"] == 0
    ids = datamodule.sets["train"].tensors[0]  # (N, max_length): [CLS] text [SEP] [PAD]...
    assert (ids[:, 0] == special["cls"]).all() and (ids == special["sep"]).sum(1).eq(1).all()
    before = {k: v.clone() for k, v in task.net.state_dict().items()}

    record = train(cfg)
    assert record["timing"]["train_steps"] == 3
    assert torch.isfinite(torch.tensor(record["metrics"]["val/mlm_loss"]))
    trained = torch.load(record["checkpoints"]["last"], weights_only=True)["state_dict"]
    changed = [k for k, v in before.items() if not torch.equal(trained[f"net.{k}"], v)]
    assert any("encoder.layer.0" in k for k in changed), "three steps changed no encoder weight"


def test_a_hub_id_offline_and_not_cached_is_one_clear_error(monkeypatch, glue, compose_cfg):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at start sets it
    missing = "fmlab-test/no-such-bert"
    with pytest.raises(FmlabError, match=f"model.name_or_path={missing} is not in the Hugging"):
        HFMaskedLM(missing, vocab_size=30, pad_id=0)
    # Through fmlab-train's build, the data (built first) names its tokenizer the same way.
    with pytest.raises(FmlabError, match=f"data.tokenizer=hf:{missing} is not in .*HF_HUB_OFF"):
        build(compose_cfg("train", hf_masked_lm(missing, glue)))


def validate(cfg, tmp_path, weights: dict | None = None, data_state: dict | None = None) -> float:
    """val/mlm_loss of the run ``cfg`` composes, through a real Trainer's validation pass."""
    datamodule = instantiate(cfg.data)
    if data_state is not None:
        datamodule.load_state_dict(data_state)  # the checkpoint's own tokenizer
    datamodule, task = build(cfg, datamodule)
    if weights is not None:
        task.load_state_dict(weights)
    trainer = quiet_trainer(tmp_path, accelerator="cpu")
    return trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val/mlm_loss"]


@pytest.mark.slow  # fmlab-train and fmlab-export runs: .ci/run runs it after `make test`
def test_a_pretrained_fmlab_bert_exports_and_scores_the_same_in_transformers(
    glue, compose_cfg, tmp_path
):
    recipe = ["experiment=bert_tiny_mlm_sst2", *glue]
    run_cli("fmlab-train", *recipe, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env=OFFLINE)
    ckpt, out = tmp_path / "run" / "checkpoints" / "last.ckpt", tmp_path / "exported"
    export_cli(f"ckpt_path={ckpt}", f"out={out}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)

    checkpoint = torch.load(ckpt, weights_only=True)
    net, tokenizer = rebuild_net(checkpoint), saved_tokenizer(checkpoint)
    model = transformers.AutoModelForMaskedLM.from_pretrained(out, local_files_only=True).eval()
    assert isinstance(model, transformers.BertForMaskedLM)
    theirs = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    texts = ["good sweet fine", "awful grim bad sour dull awful", "lovely"]
    batch = theirs(texts, padding=True, return_tensors="pt")
    ours = [[2, *tokenizer.encode(t).tolist(), 3] for t in texts]
    assert [row[: len(o)].tolist() for row, o in zip(batch["input_ids"], ours, strict=True)] == ours
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        logits = model(**batch).logits[real]  # (N, vocab): every real position
        torch.testing.assert_close(
            logits, net.mlm_logits(batch["input_ids"], real), atol=1e-5, rtol=1e-5
        )

    # model=hf_masked_lm takes the folder back: the same masks on the same ids, the same loss.
    data_state = checkpoint["LabelledTextDataModule"]
    fmlab_loss = validate(
        compose_cfg("train", recipe), tmp_path, checkpoint["state_dict"], data_state
    )
    hf_loss = validate(compose_cfg("train", hf_masked_lm(out, glue)), tmp_path)
    assert hf_loss == pytest.approx(fmlab_loss, abs=1e-5)


def test_a_fine_tuned_fmlab_bert_exports_as_a_sequence_classifier(glue, compose_cfg, tmp_path):
    from fmlab.commands.export import export

    overrides = ["model=bert_tiny", "model.n_embd=32", "optimizer=adamw", *glue]
    record = train(compose_cfg("train", [*overrides, "optimized_metric=val/acc", "test=false"]))
    ckpt, out = record["checkpoints"]["last"], tmp_path / "exported"
    export(
        OmegaConf.create({"ckpt_path": ckpt, "out": str(out), "format": "hf", "merge_lora": False})
    )

    checkpoint = torch.load(ckpt, weights_only=True)
    net = rebuild_net(checkpoint)
    assert saved_state(checkpoint)["classes"] == ["0", "1"]  # in the classifier's order
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        out, local_files_only=True
    )
    assert model.config.id2label == {0: "0", 1: "1"}
    theirs = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    batch = theirs(["good sweet fine lovely", "awful"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(
            model.eval()(**batch).logits, net(batch["input_ids"]), atol=1e-5, rtol=1e-5
        )
