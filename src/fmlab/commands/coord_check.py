"""fmlab-coord-check: μP's coordinate check. The GPT of fmlab-train's composed config is built
at each width in ``widths`` (model.n_embd) and each parametrization, and trained ``steps`` steps
of the config's own optimizer (its μP groups included) without a schedule, on the same batches of
the config's own data; forward hooks take the RMS of each layer's output at every step. A layer
whose RMS, after the first update, does not grow or shrink with the width (the slope of log2 RMS
against log2 width within ``flat_slope``) is "flat": what μP promises and SP does not keep.
"""

import json
import logging
import math
import statistics
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from fmlab.commands.train import build
from fmlab.errors import UsageError
from fmlab.run import threads
from fmlab.tables.curves import save_figure

log = logging.getLogger(__name__)


def layers(net) -> dict[str, torch.nn.Module]:
    """The modules whose outputs are the coordinates: the embedding (after μP's input multiplier:
    the dropout's output), each block's attention and MLP branches, and the logits."""
    named = {"embedding": net.drop}
    for i, block in enumerate(net.blocks):
        named[f"block{i}.attn"] = block.attn
        named[f"block{i}.mlp"] = block.mlp
    named["logits"] = net.lm_head
    return named


def measure(cfg: DictConfig, datamodule, width: int, parametrization: str) -> dict[str, list]:
    """{layer: [RMS of its output at step 0 (initialisation), 1, ..., steps - 1]}, averaged over
    the seeds (each its own init; the batches are the same)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model.n_embd = width
        cfg.model.parametrization = parametrization
        cfg.scheduler = None  # the optimizer's own lr at every step
    sizes = defaultdict(float)
    for seed in cfg.seeds:
        L.seed_everything(seed, verbose=False)
        _, task = build(cfg, datamodule=datamodule)
        optimizer = task.configure_optimizers()
        seen = defaultdict(list)  # {layer: [RMS at step 0, 1, ...]} of this seed
        for name, module in layers(task.net).items():
            module.register_forward_hook(
                lambda _m, _i, out, rms=seen[name]: rms.append(out.detach().pow(2).mean().sqrt())
            )
        task.train()
        batches = iter(datamodule.train_dataloader())
        for _ in range(cfg.steps):
            x, y = datamodule.on_after_batch_transfer(next(batches), 0)  # as Lightning does
            _, loss = task.net(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for name, values in seen.items():
            sizes[name] = sizes[name] + torch.stack(values) / len(cfg.seeds)
    return {name: values.tolist() for name, values in sizes.items()}


def slope(widths: list[int], values: list[float]) -> float:
    """Least-squares slope of log2(value) against log2(width): 0 flat, 0.5 grows as √width."""
    logs = [math.log2(w) for w in widths], [math.log2(v) for v in values]
    return statistics.linear_regression(*logs).slope


def coordinate_check(cfg: DictConfig) -> dict:
    """Every (parametrization, width)'s RMS per layer and step, and each layer's slope per step."""
    if OmegaConf.select(cfg, "model._target_") != "fmlab.nets.GPT":
        raise UsageError(
            f"fmlab-coord-check checks fmlab's GPT (model=gpt), not model._target_="
            f"{OmegaConf.select(cfg, 'model._target_')!r}. Give a GPT recipe, e.g. "
            "experiment=mutransfer_shakespeare_char."
        )
    widths = sorted(cfg.widths)
    if len(widths) < 2:
        raise UsageError(f"widths={list(widths)}: a slope needs two widths or more.")
    result = {"widths": widths, "steps": cfg.steps, "flat_slope": cfg.flat_slope}
    datamodule = instantiate(cfg.data)  # once: every net sees the same batches
    datamodule.prepare_data()
    datamodule.setup("fit")
    for kind in cfg.parametrizations:
        runs = [measure(cfg, datamodule, w, kind) for w in widths]
        result[kind] = {
            name: {
                "rms": [run[name] for run in runs],  # [width][step]
                "slope": [slope(widths, [run[name][t] for run in runs]) for t in range(cfg.steps)],
            }
            for name in runs[0]
        }
        for name, layer in result[kind].items():
            rounded = [round(s, 2) for s in layer["slope"]]
            log.info("%s %-12s slope per step %s", kind, name, rounded)
    return result


def plot(result: dict, out_base: Path) -> list[Path]:
    """One row per parametrization, one panel per layer: RMS against width, a line per step."""
    from matplotlib.figure import Figure

    kinds = [k for k in ("sp", "mup") if k in result]
    names = list(result[kinds[0]])
    fig = Figure(figsize=(2.6 * len(names), 2.4 * len(kinds)), layout="constrained")
    axes = fig.subplots(len(kinds), len(names), squeeze=False)
    steps, widths = result["steps"], result["widths"]
    for row, kind in zip(axes, kinds, strict=True):
        for ax, name in zip(row, names, strict=True):
            layer = result[kind][name]
            for t in range(steps):
                values = [layer["rms"][i][t] for i in range(len(widths))]
                colour = (t / max(1, steps - 1), 0.3, 1 - t / max(1, steps - 1))
                ax.plot(widths, values, marker="o", markersize=3, color=colour, label=f"t={t}")
            ax.set(yscale="log", title=f"{kind}: {name}", xlabel="width")
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="x-small")
    fig.suptitle("Coordinate check: RMS of each layer's output against width, per step")
    return save_figure(fig, out_base)


def verdicts(result: dict) -> list[str]:
    """Per parametrization, the layers whose slope after the first update is not flat."""
    lines = []
    for kind in ("sp", "mup"):
        if kind not in result:
            continue
        steep = {
            name: max(layer["slope"][1:], key=abs)
            for name, layer in result[kind].items()
            if any(abs(s) > result["flat_slope"] for s in layer["slope"][1:])
        }
        lines.append(
            f"{kind}: "
            + (
                "every layer flat"
                if not steep
                else "not flat: " + ", ".join(f"{n} (slope {s:+.2f})" for n, s in steep.items())
            )
            + f" (|slope| ≤ {result['flat_slope']} after the first update)"
        )
    return lines


def coord_check(cfg: DictConfig) -> dict:
    if cfg.steps < 2:
        raise UsageError(
            f"steps={cfg.steps}: the check looks after the first update; give 2 or more."
        )
    threads.choose(cfg.get("torch_threads"))
    result = coordinate_check(cfg)
    out = Path(cfg.paths.output_dir)
    (out / "coord_check.json").write_text(json.dumps(result, indent=1))
    written = plot(result, out / "coord_check")
    for line in verdicts(result):
        log.info("%s", line)
    log.info("Wrote %s and %s", out / "coord_check.json", ", ".join(map(str, written)))
    return result
