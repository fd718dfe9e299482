"""Language modelling: any net with ``forward(idx, targets) -> (logits, loss)`` (GPT, RNN, LSTM,
GRU, a Hugging Face causal LM) trained on next-token prediction, all weights or LoRA adapters."""

import math
import time

import torch
from torch import nn
from torchmetrics import MeanMetric

from fmlab.errors import FmlabError
from fmlab.metrics.flops import mfu
from fmlab.tasks.base import OptimizerFactory, SchedulerFactory, Task, matrix_decay_groups
from fmlab.techniques.lora import lora_settings


class LanguageModel(Task):
    """Logs ``train/loss`` (mean since the last written step), ``val/loss``, ``val/ppl`` and
    ``val/bpc`` (bits per character of the text; for a character tokenizer loss / ln 2), and the
    same for ``test``. The optimizer gets two parameter groups: weight decay only on tensors of
    2 or more dimensions (matrices, embeddings), none on biases and norms (nanoGPT); a μP net's own
    groups instead (``mup_groups``: per-group lr, eps and decay factors). The scheduler
    steps every optimizer step. Throughput: ``train/tokens_per_s`` (and ``train/mfu`` on a GPU of
    known peak) over the steps since the last written one, and ``throughput()`` for the record."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        lora: dict | None = None,
    ) -> None:
        super().__init__()
        lora = lora_settings({"lora": lora})  # plain values (the checkpoint keeps them) or None
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        # LoRA: adapters on the named layers, the rest frozen; the record goes into results.json.
        self.run_record = self.adapt(net, lora)
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        # A running sum, not a metric object: at batch 12 every microsecond of a step shows.
        self.register_buffer("train_sum", torch.zeros(()), persistent=False)
        self.train_seen = 0
        self.batch_tokens = 0  # B·T of a micro-batch: every training window has the same length
        self.clock: tuple[float, int] | None = None  # (perf_counter, global_step) last written
        self.device_name: str | None = None  # the GPU's, for MFU; read while training on it

    def on_train_start(self) -> None:
        # Lightning moves the module back to the CPU after fit: the device is known only now.
        if self.device.type == "cuda":
            self.device_name = torch.cuda.get_device_name(self.device)
        self.clock = (time.perf_counter(), self.global_step)  # the first window has the start-up

    def tokens_per_step(self) -> int:
        """Tokens one optimizer step trains on, across micro-batches and ranks."""
        trainer = self.trainer
        return self.batch_tokens * trainer.accumulate_grad_batches * trainer.world_size

    def throughput(self, train_s: float, steps: int) -> dict:
        """What fmlab-train adds to the record's timing: ``steps`` optimizer steps in ``train_s``
        seconds (validations during fit included, as in its train_steps_per_s). flops_per_s is
        of all ranks together; MFU is None on a CPU or a GPU whose peak fmlab.metrics.flops
        lacks."""
        flops = self.flops_per_token()
        # None when this process trained no batch (a run resumed at its last step).
        tokens_per_s = self.tokens_per_step() * steps / train_s if self.batch_tokens else None
        flops_per_s = flops * tokens_per_s if tokens_per_s is not None else None
        return {
            "tokens_per_s": tokens_per_s,
            "flops_per_token": flops,
            "flops_per_s": flops_per_s,
            "mfu": mfu(flops_per_s, self.device_name, self.trainer.world_size),
        }

    def flops_per_token(self) -> int:
        """The net's training FLOPs per token; a net that cannot say counts 6 per parameter."""
        count = getattr(self.net, "flops_per_token", None)
        return count() if count else 6 * sum(p.numel() for p in self.net.parameters())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net(idx)[0]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch  # (B, T) each
        if not self.batch_tokens:
            self.batch_tokens = x.numel()
        _, loss = self.net(x, y)
        self.train_sum += loss.detach()
        self.train_seen += 1
        # self.log costs ~0.8 ms on Lightning 2.6: only on the steps whose metrics are written.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", self.train_sum / self.train_seen, prog_bar=True)
            self.train_sum.zero_()
            self.train_seen = 0
            self._log_throughput()
        return loss

    def _log_throughput(self) -> None:
        """Tokens/s since the last written step. Under gradient accumulation every micro-batch
        of a written step comes here: the first one writes, the others find no step elapsed."""
        now, step = time.perf_counter(), self.global_step
        started, since = self.clock
        if step == since:
            return
        tokens_per_s = self.tokens_per_step() * (step - since) / (now - started)
        self.log("train/tokens_per_s", tokens_per_s)
        flops = self.flops_per_token()
        utilisation = mfu(flops * tokens_per_s, self.device_name, self.trainer.world_size)
        if utilisation is not None:
            self.log("train/mfu", utilisation)
        self.clock = (now, step)

    def _eval_step(self, batch, metric: MeanMetric) -> None:
        x, y = batch
        _, loss = self.net(x, y)
        metric.update(loss, y.numel())  # weighted by tokens: a short last batch counts less

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.val_loss)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.test_loss)

    def _log_eval(self, split: str, metric: MeanMetric) -> None:
        loss = metric.compute()
        metric.reset()
        self.log(f"{split}/loss", loss, prog_bar=split == "val")
        self.log(f"{split}/ppl", torch.exp(loss))
        tokens_per_char = getattr(self.trainer.datamodule, "tokens_per_char", {}).get(split)
        if tokens_per_char:
            self.log(f"{split}/bpc", loss / math.log(2) * tokens_per_char)

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val", self.val_loss)

    def on_test_epoch_end(self) -> None:
        self._log_eval("test", self.test_loss)

    def configure_optimizers(self):
        if getattr(self.net, "parametrization", "sp") != "mup":
            return self.optimizer_and_schedule(matrix_decay_groups(self.parameters()), "step")
        schedule = self.optimizer_and_schedule(self.net.mup_groups(), "step")
        optimizer = schedule["optimizer"] if isinstance(schedule, dict) else schedule
        if "betas" not in optimizer.defaults:
            raise FmlabError(
                f"model.parametrization=mup trains with Adam's μP rules (hidden lr / width "
                f"multiplier), but the optimizer is {type(optimizer).__name__}, whose μP rules "
                "differ. Use optimizer=adamw (or adam), or model.parametrization=sp."
            )
        return schedule
