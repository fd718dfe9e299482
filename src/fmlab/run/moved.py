"""Where fmlab's modules lived before the house was laid out by role (fmlab 0.1). Configs kept in
the checkpoints and run records of those versions name them (``_target_: fmlab.schedules.
warmup_cosine``); ``current`` renames them, so those runs still resume, evaluate, sample, export
and serve as ``init_from`` (tests/run/test_moved.py reads a checkpoint written by fmlab 0.1)."""

MOVED = {
    "fmlab.averaging": "fmlab.techniques.averaging",
    "fmlab.cache": "fmlab.run.cache",
    "fmlab.callbacks": "fmlab.run.callbacks",
    "fmlab.checkpoints": "fmlab.run.checkpoints",
    "fmlab.checks": "fmlab.config.checks",
    "fmlab.console": "fmlab.run.console",
    "fmlab.constraints": "fmlab.config.constraints",
    "fmlab.data.gpt2_bpe": "fmlab.data.tokenizers.gpt2_bpe",
    "fmlab.data.tokenizer": "fmlab.data.tokenizers",
    "fmlab.evaluate": "fmlab.commands.evaluate",
    "fmlab.fid_features": "fmlab.metrics.fid",
    "fmlab.files": "fmlab.run.files",
    "fmlab.flops": "fmlab.metrics.flops",
    "fmlab.frozen_features": "fmlab.techniques.frozen_features",
    "fmlab.gan_losses": "fmlab.techniques.gan_losses",
    "fmlab.hub.export": "fmlab.commands.export",
    "fmlab.hub.loading": "fmlab.run.pretrained",
    "fmlab.hub.lora": "fmlab.techniques.lora",
    "fmlab.losses": "fmlab.techniques.losses",
    "fmlab.record": "fmlab.run.record",
    "fmlab.reproduce": "fmlab.commands.reproduce",
    "fmlab.resolvers": "fmlab.config.resolvers",
    "fmlab.resume": "fmlab.run.resume",
    "fmlab.runlock": "fmlab.run.runlock",
    "fmlab.sample": "fmlab.commands.sample",
    "fmlab.schedules": "fmlab.techniques.schedules",
    "fmlab.search": "fmlab.sweeps.search",
    "fmlab.speed": "fmlab.techniques.speed",
    "fmlab.sweeps": "fmlab.sweeps.jobs",
    "fmlab.table": "fmlab.commands.table",
    "fmlab.tracking": "fmlab.run.tracking",
    "fmlab.train": "fmlab.commands.train",
    "fmlab.transfer": "fmlab.techniques.transfer",
}


def renamed(path: str) -> str:
    """A dotted path (``fmlab.schedules.warmup_cosine``) with its old module's new name."""
    module, _, name = path.rpartition(".")
    if module in MOVED:
        return f"{MOVED[module]}.{name}"
    return path


def current(config):
    """``config`` (a plain dict, as checkpoints and results.json keep it) with every ``_target_``
    that names an old module renamed; the same object when nothing was old."""
    if isinstance(config, dict):
        out = {k: current(v) for k, v in config.items()}
        if isinstance(out.get("_target_"), str):
            out["_target_"] = renamed(out["_target_"])
        return out
    if isinstance(config, list):
        return [current(v) for v in config]
    return config
