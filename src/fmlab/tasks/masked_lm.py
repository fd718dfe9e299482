"""Masked-language-model pre-training (Devlin et al. 2019) with RoBERTa's dynamic masking (Liu et
al. 2019): fresh masks every batch, no next-sentence objective. Any net with
``encode(idx) -> (B, T, C)`` and ``mlm_logits(hidden, positions) -> (N, vocab)`` (fmlab's Bert)."""

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from fmlab.config.constraints import PROBABILITY, Range
from fmlab.errors import FmlabError
from fmlab.tasks.base import OptimizerFactory, SchedulerFactory, Task, matrix_decay_groups
from fmlab.techniques.lora import lora_settings

SPECIAL = ("pad", "unk", "cls", "sep", "mask")
NEVER_MASKED = ("pad", "cls", "sep", "mask")  # [UNK] stands for text: it is masked like any token
EVAL_SEED = 0  # every validation and test pass masks the same positions: comparable epochs


def mask_tokens(
    ids: torch.Tensor,
    generator: torch.Generator,
    maskable: torch.Tensor,
    replacements: torch.Tensor,
    mask_id: int,
    rate: float,
    mask_frac: float,
    random_frac: float,
    word_start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, chosen)``, both (B, T): each maskable position is chosen with probability
    ``rate``; of the chosen, ``mask_frac`` become ``mask_id``, ``random_frac`` a token drawn from
    ``replacements``, the rest stay. ``maskable`` (B, T) says which positions may be chosen.
    With ``word_start`` (B, T), whole words are chosen: a word's start with probability ``rate``,
    and its continuation tokens with it."""
    u = torch.rand(ids.shape, generator=generator, device=ids.device)  # (B, T)
    if word_start is None:
        chosen = maskable & (u < rate)
        # Given u < rate, u / rate is uniform on [0, 1): it splits the chosen, one draw for both.
        split = u / rate
    else:
        positions = torch.arange(ids.shape[1], device=ids.device)
        # (B, T): where the word of each position starts (0, [CLS], before the first word)
        starts = torch.where(word_start, positions, 0).cummax(1).values
        chosen = (word_start & (u < rate)).gather(1, starts) & maskable
        split = torch.rand(ids.shape, generator=generator, device=ids.device)
    to_mask = chosen & (split < mask_frac)
    to_random = chosen & ~to_mask & (split < mask_frac + random_frac)
    drawn = torch.randint(len(replacements), ids.shape, generator=generator, device=ids.device)
    inputs = torch.where(to_random, replacements[drawn], ids).masked_fill(to_mask, mask_id)
    return inputs, chosen


class MaskedLM(Task):
    """Cross-entropy over the chosen positions only; the batch's labels, if any, are ignored.

    Logs ``train/loss_step`` on the steps Lightning writes, and per validation or test pass
    ``{split}/mlm_loss``, ``{split}/mlm_acc`` (top-1 over the chosen positions), ``{split}/ppl``
    (exp of mlm_loss), and the same two as ``{split}/loss`` and ``{split}/acc``, which the default
    callbacks monitor (the best checkpoint is the one of best MLM accuracy).

    ``special_ids`` ({"pad", "unk", "cls", "sep", "mask"} → id) default to the data module's
    ``special_ids``, read when fitting, validating or testing. Whole-word masking reads the
    ids that continue a word (WordPiece's ``##`` pieces) from its ``continuation_ids``.
    Training masks come from a generator seeded by the run's seed (``seed_everything``) and the
    rank; evaluation masks from a fixed seed. AdamW-style groups: weight decay on matrices only;
    the schedule steps every optimizer step.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        mask_rate: Annotated[float, Range(gt=0.0, le=1.0)] = 0.15,
        mask_token_frac: Annotated[float, PROBABILITY] = 0.8,
        random_token_frac: Annotated[float, PROBABILITY] = 0.1,
        whole_word: bool = False,
        special_ids: dict | None = None,
        lora: dict | None = None,
    ) -> None:
        super().__init__()
        if not all(hasattr(net, a) for a in ("encode", "mlm_logits", "vocab_size")):
            raise FmlabError(
                f"task=masked_lm needs a net with a masked-LM head (encode, mlm_logits and "
                f"vocab_size); {type(net).__name__} has none. Use a model=bert_* net or "
                "model=hf_masked_lm."
            )
        if mask_token_frac + random_token_frac > 1:
            raise FmlabError(
                f"task.mask_token_frac={mask_token_frac} + task.random_token_frac="
                f"{random_token_frac} exceed 1: they are shares of the chosen positions (BERT: "
                "0.8 and 0.1, the last 0.1 left unchanged)."
            )
        # A plain dict, not Hydra's DictConfig: the checkpoint loads with weights_only=True.
        special_ids = dict(special_ids) if special_ids is not None else None
        lora = lora_settings({"lora": lora})  # plain values (the checkpoint keeps them) or None
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        # The classification head is no part of the objective: frozen, it gets no decay and DDP
        # waits for no gradient of it (it would, and fail, for a parameter the loss never reaches).
        for module in (getattr(net, "pooler", None), getattr(net, "classifier", None)):
            if module is not None:
                module.requires_grad_(False)
        # LoRA: adapters on the named layers (qkv, proj, mlp.0, mlp.2), all else frozen.
        self.run_record = self.adapt(net, lora)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        for split in ("val", "test"):
            setattr(self, f"{split}_loss", MeanMetric())
            setattr(self, f"{split}_acc", MeanMetric())
        self.tables: dict | None = None  # vocabulary lookups for masking, set by set_vocabulary
        if special_ids is not None:
            self.set_vocabulary(special_ids)
        self.train_generator: torch.Generator | None = None
        self.eval_generator: torch.Generator | None = None

    def set_vocabulary(self, special_ids: dict, continuation_ids=None) -> None:
        """The ids masking needs: ``special_ids`` ({pad, unk, cls, sep, mask} → id) and, for
        whole-word masking, ``continuation_ids`` (the ids that continue a word, or a boolean
        (vocab_size,) tensor of them)."""
        missing = [k for k in SPECIAL if k not in special_ids]
        if missing:
            raise FmlabError(
                f"task=masked_lm needs the ids of {list(SPECIAL)}; special_ids={special_ids} "
                f"lacks {missing}. Use a tokenizer with BERT's special tokens."
            )
        vocab = self.net.vocab_size
        maskable = torch.ones(vocab, dtype=torch.bool)
        maskable[[special_ids[k] for k in NEVER_MASKED]] = False
        ordinary = torch.ones(vocab, dtype=torch.bool)
        ordinary[[special_ids[k] for k in SPECIAL]] = False
        self.tables = {
            "maskable": maskable,  # (vocab,): may be chosen
            "replacements": ordinary.nonzero().squeeze(1),  # the ids a random token is drawn from
            "mask_id": int(special_ids["mask"]),
        }
        if self.hparams.whole_word:
            if continuation_ids is None:
                raise FmlabError(
                    "task.whole_word=true needs to know which tokens continue a word, and this "
                    "data module has no `continuation_ids` (a WordPiece tokenizer's ## pieces). "
                    "Use data with a WordPiece tokenizer, or task.whole_word=false."
                )
            continues = torch.as_tensor(continuation_ids)
            if continues.dtype != torch.bool:
                continues = torch.zeros(vocab, dtype=torch.bool).index_fill_(0, continues.long(), 1)
            self.tables["continues"] = continues  # (vocab,)

    def _read_vocabulary(self) -> None:
        """The data module's special and continuation ids, unless given to the constructor."""
        if self.tables is not None:
            return
        data = getattr(self.trainer, "datamodule", None)
        special = getattr(data, "special_ids", None)
        if special is None:
            raise FmlabError(
                f"task=masked_lm needs the ids of {list(SPECIAL)}, which data "
                f"{type(data).__name__} does not provide (no `special_ids`). Use labelled or "
                "unlabelled text tokenised with BERT's special tokens, or set task.special_ids."
            )
        self.set_vocabulary(dict(special), getattr(data, "continuation_ids", None))

    def on_fit_start(self) -> None:
        self._read_vocabulary()
        # seed_everything(seed) makes torch's initial seed the run's: same seed, same masks.
        seed = (torch.initial_seed() + self.global_rank) % 2**63
        self.train_generator = torch.Generator(self.device).manual_seed(seed)

    def on_validation_start(self) -> None:
        self._read_vocabulary()

    def on_test_start(self) -> None:
        self._read_vocabulary()

    def on_validation_epoch_start(self) -> None:
        self.eval_generator = torch.Generator(self.device).manual_seed(EVAL_SEED)

    def on_test_epoch_start(self) -> None:
        self.eval_generator = torch.Generator(self.device).manual_seed(EVAL_SEED)

    def mask(self, ids: torch.Tensor, generator: torch.Generator):
        """``(inputs, chosen)`` for token ids (B, T): see ``mask_tokens``."""
        tables = self.tables
        if tables["maskable"].device != ids.device:
            tables.update({k: v.to(ids.device) for k, v in tables.items() if k != "mask_id"})
        maskable = tables["maskable"][ids]  # (B, T)
        starts = maskable & ~tables["continues"][ids] if "continues" in tables else None
        hp = self.hparams
        return mask_tokens(
            ids, generator, maskable, tables["replacements"], tables["mask_id"],
            hp.mask_rate, hp.mask_token_frac, hp.random_token_frac, starts,
        )  # fmt: skip

    def mlm_loss(self, hidden: torch.Tensor, ids: torch.Tensor, chosen: torch.Tensor):
        """``(loss, correct, count)``: mean cross-entropy over the ``count`` chosen positions of
        hidden states (B, T, C) against the original ids, and how many the head got right."""
        logits = self.net.mlm_logits(hidden, chosen)  # (N, vocab)
        targets = ids[chosen]  # (N,)
        count = targets.numel()
        # A sum over max(N, 1): a batch with nothing chosen gives 0, not NaN.
        loss = F.cross_entropy(logits.float(), targets, reduction="sum") / max(count, 1)
        return loss, (logits.argmax(-1) == targets).sum(), count

    def step(self, ids: torch.Tensor, generator: torch.Generator):
        inputs, chosen = self.mask(ids, generator)
        return self.mlm_loss(self.net.encode(inputs), ids, chosen)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net.encode(idx)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _, _ = self.step(batch[0], self.train_generator)  # pre-training reads only the text
        # self.log costs ~0.8 ms on Lightning 2.6: only on the steps whose metrics are written.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True)
        return loss

    def eval_step(self, batch, split: str) -> None:
        loss, correct, count = self.step(batch[0], self.eval_generator)
        getattr(self, f"{split}_loss").update(loss, count)  # weighted by the chosen positions
        getattr(self, f"{split}_acc").update(correct / max(count, 1), count)

    def validation_step(self, batch, batch_idx: int) -> None:
        self.eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.eval_step(batch, "test")

    def eval_epoch_end(self, split: str) -> None:
        loss_metric, acc_metric = getattr(self, f"{split}_loss"), getattr(self, f"{split}_acc")
        loss, acc = loss_metric.compute(), acc_metric.compute()
        loss_metric.reset()
        acc_metric.reset()
        self.log_dict(
            {
                f"{split}/mlm_loss": loss,
                f"{split}/mlm_acc": acc,
                f"{split}/ppl": torch.exp(loss),
                f"{split}/loss": loss,
                f"{split}/acc": acc,
            }
        )

    def on_validation_epoch_end(self) -> None:
        self.eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self.eval_epoch_end("test")

    def configure_optimizers(self):
        return self.optimizer_and_schedule(matrix_decay_groups(self.parameters()), "step")
