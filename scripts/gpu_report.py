"""gpu_report.md of the GPU check (scripts/gpu_check.py): a table per part, the GPU, the versions.

Reads only the parts' entries: each has status, seconds and note, plus the run's results.json
(``record``), airbench's JSON (``result``) or bench_vision's output (``output``).
"""

import time

from fmlab.metrics.flops import PEAK_BF16_FLOPS, peak_flops

AIRBENCH94_A100 = {"eager": 3.83, "compiled": 3.09}  # seconds to 94.01% (Jordan 2024)
NANOGPT_VAL_LOSS = 1.4697  # shakespeare-char, 5000 iterations, about 3 minutes on an A100


def cell(value, spec: str = ".2f", scale: float = 1, suffix: str = "") -> str:
    """A table cell: the value scaled and formatted, or a dash when there is none."""
    return "—" if value is None else f"{value * scale:{spec}}{suffix}"


def metric(part: dict, key: str):
    return part.get("record", {}).get("metrics", {}).get(key)


def timing(part: dict, key: str):
    return part.get("record", {}).get("timing", {}).get(key)


def images_per_s(part: dict):
    record = part.get("record")
    if not record or not record["timing"]["train_s"]:
        return None
    steps, batch = record["timing"]["train_steps"], record["config"]["data"]["batch_size"]
    return steps * batch / record["timing"]["train_s"]


def escape(text: str) -> str:
    return text.replace("|", "\\|")  # a bar inside a cell would end it


def status(part: dict) -> str:
    note = escape(part.get("note", ""))
    return part["status"] + (f": {note}" if note and part["status"] != "ok" else "")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def cifar_section(parts: dict) -> str:
    airbench = parts.get("airbench94", {})
    result = airbench.get("result", {})
    runs = result.get("runs", 0)
    rows = [
        [
            f"airbench94, mean of {runs}",
            cell(result.get("mean_test_acc"), ".2f", 100, "%"),
            cell(result.get("mean_train_s")),
            "—",
            cell(airbench.get("seconds"), ".0f"),
            status(airbench),
            f"94.01% in {AIRBENCH94_A100['eager']} s",
        ]
    ]
    eager, compiled = AIRBENCH94_A100["eager"], AIRBENCH94_A100["compiled"]
    for name, label, reference in (
        ("fast", "cifar10_fast, eager", f"goal 94%; airbench94 {eager} s"),
        ("fast_compiled", "cifar10_fast, compiled", f"airbench94 compiled {compiled} s"),
    ):
        part = parts.get(name, {"status": "skipped"})
        rows.append(
            [
                label,
                cell(metric(part, "test/acc"), ".2f", 100, "%"),
                cell(timing(part, "train_s")),
                cell(images_per_s(part), ".0f"),
                cell(part.get("seconds"), ".0f"),
                status(part),
                reference,
            ]
        )
    header = ["run", "test acc", "train s", "images/s", "wall s", "status", "reference (A100)"]
    note = (
        "airbench's accuracy is with its test-time augmentation and its time is its own "
        "(training and evaluation on the GPU); fmlab's train s is Lightning's training loop, "
        "wall s the whole process (start-up and compilation included)."
    )
    return "## 1. cifar10_fast against airbench94\n\n" + table(header, rows) + "\n\n" + note


def gpt_params(record: dict) -> int:
    """nanoGPT's count (position embeddings excluded) of the net this run trained."""
    from hydra.utils import instantiate

    net = instantiate(
        record["config"]["model"],
        vocab_size=record["data"]["vocab_size"],
        block_size=record["config"]["data"]["block_size"],
    )
    return net.num_params()


def gpt_mfu(record: dict, gpu: str, seconds_per_iter: float):
    """nanoGPT's estimate_mfu: 6N + 12·L·H·Q·T FLOPs per token, over the GPU's bf16 peak."""
    peak = peak_flops(gpu)
    if peak is None:
        return None
    model, data = record["config"]["model"], record["config"]["data"]
    T, B = data["block_size"], data["batch_size"]
    L, H, Q = model["n_layer"], model["n_head"], model["n_embd"] // model["n_head"]
    flops_per_iter = (6 * gpt_params(record) + 12 * L * H * Q * T) * T * B
    return flops_per_iter / seconds_per_iter / peak


def gpt_section(part: dict, gpu: str) -> str:
    record = part.get("record")
    steps = ms = tokens = mfu = None
    if record and record["timing"]["train_steps"]:
        data = record["config"]["data"]
        steps = record["timing"]["train_steps"]
        seconds_per_iter = record["timing"]["train_s"] / steps
        ms = 1000 * seconds_per_iter
        tokens = data["batch_size"] * data["block_size"] / seconds_per_iter
        mfu = gpt_mfu(record, gpu, seconds_per_iter)
    header = ["run", "steps", "val loss", "ms/iter", "tokens/s", "MFU", "wall s", "status"]
    row = [
        "gpt_shakespeare_char",
        cell(steps, "d"),
        cell(metric(part, "val/loss"), ".4f"),
        cell(ms, ".1f"),
        cell(tokens, ",.0f"),
        cell(mfu, ".1f", 100, "%"),
        cell(part.get("seconds"), ".0f"),
        status(part),
    ]
    note = (
        f"nanoGPT: val loss {NANOGPT_VAL_LOSS} after 5000 iterations, about 3 minutes on an A100. "
        "ms/iter here includes the validation every 250 steps and checkpointing; MFU as nanoGPT's "
        "estimate_mfu, over the GPU's dense bf16 peak "
        f"({', '.join(f'{k} {v / 1e12:.0f}' for k, v in PEAK_BF16_FLOPS)} TFLOP/s)."
    )
    return "## 2. gpt_shakespeare_char against nanoGPT\n\n" + table(header, [row]) + "\n\n" + note


def vision_section(part: dict) -> str:
    output = part.get("output", "").splitlines()
    lines = [line for line in output if line.startswith(("|", "batch"))]
    body = "\n".join(lines) if lines else "(no rows)"
    return f"## 3. Vision nets, training images/s (bench_vision.py)\n\n{body}\n\n{status(part)}"


def ablation_section(parts: dict) -> str:
    base = images_per_s(parts.get("fast", {}))
    rows = []
    for name, label, switches in (
        ("fast", "recipe (eager)", "✓ ✓ –"),
        ("fast_compiled", "compile on", "✓ ✓ ✓"),
        ("fast_fp32", "bf16 off (fp32)", "– ✓ –"),
        ("fast_no_channels_last", "channels-last off", "✓ – –"),
    ):
        part = parts.get(name, {"status": "skipped"})
        speed = images_per_s(part)
        ratio = speed / base if speed and base else None
        rows.append(
            [label, *switches.split(), cell(metric(part, "test/acc"), ".2f", 100, "%")]
            + [cell(timing(part, "train_s")), cell(speed, ".0f"), cell(ratio, ".2f", suffix="×")]
            + [status(part)]
        )
    header = ["variant", "bf16", "channels-last", "compile", "test acc", "train s", "images/s"]
    header += ["vs recipe", "status"]
    title = "## 4. What bf16, channels-last and compile bring (cifar10_fast)"
    return f"{title}\n\n{table(header, rows)}"


def header_lines(mode: str, env: dict, times_s: tuple[float, float, int]) -> str:
    packages, hardware = env["packages"], env["hardware"]
    cpu = f"no GPU ({hardware['cpu']}, {hardware['cpu_count']} cores)"
    gpu = ", ".join(hardware["gpus"]) or cpu
    versions = " · ".join(
        f"{name} {packages.get(name) or '—'}"
        for name in ("python", "torch", "lightning", "torchvision", "hydra-core", "airbench")
    )
    cuda = f"CUDA {env.get('cuda') or '—'}, cuDNN {env.get('cudnn') or '—'}"
    commit = (env["git"]["commit"] or "unknown")[:12] + (" (dirty)" if env["git"]["dirty"] else "")
    setup_s, elapsed_s, budget_s = times_s
    lines = [
        f"# fmlab GPU check, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"- GPU: {gpu}; {cuda}",
        f"- {versions} · fmlab {commit}",
        f"- {elapsed_s:.0f} s of the check's {budget_s} s (installs {setup_s:.0f} s)",
        "- CIFAR-10 rebuilt from its JPEG (quality 75) copy, not the official files: accuracies "
        "run a little below published ones, for airbench and fmlab alike",
    ]
    if mode != "gpu":
        lines.append(f"- **{mode}: every part shrunk to seconds; its numbers mean nothing**")
    return "\n".join(lines)


def parts_section(parts: dict) -> str:
    rows = [
        [name, part["status"], cell(part.get("seconds"), ".0f"), escape(part.get("note", ""))]
        for name, part in parts.items()
    ]
    return "## Parts\n\n" + table(["part", "status", "seconds", "note"], rows)


def render(mode: str, parts: dict, env: dict, times_s: tuple[float, float, int]) -> str:
    """The report; ``times_s``: installs, the whole check so far, and its budget, in seconds."""
    gpu = ", ".join(env["hardware"]["gpus"])
    sections = [
        header_lines(mode, env, times_s),
        cifar_section(parts),
        gpt_section(parts.get("gpt", {"status": "skipped"}), gpu),
        vision_section(parts.get("vision", {"status": "skipped"})),
        ablation_section(parts),
        parts_section(parts),
    ]
    return "\n\n".join(sections) + "\n"
