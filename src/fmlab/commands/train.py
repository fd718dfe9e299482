"""fmlab-train: seed, instantiate, fit, test, write results.json, return the optimized metric."""

import logging
import numbers
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, Timer
from omegaconf import DictConfig, OmegaConf

import fmlab
from fmlab.config import checks
from fmlab.errors import FmlabError
from fmlab.run import console, identity, resume, runlock, threads  # noqa: F401 (console: quiet start)
from fmlab.run.callbacks import FinalValidation, Preemption, RandomState, StopOnNonFinite
from fmlab.run.checkpoints import AtomicCheckpointIO, check_fits, load_checkpoint
from fmlab.run.files import file_sha256
from fmlab.run.record import environment, write_json_atomic
from fmlab.run.tracking import closing_loggers, instantiate_loggers
from fmlab.sweeps import search
from fmlab.sweeps.jobs import finished_record, prepare_job
from fmlab.techniques.rebuild import base_net
from fmlab.techniques.speed import NoProfiler
from fmlab.techniques.transfer import read_init_from, take_tokenizer

log = logging.getLogger(__name__)
# Where the clock of this process's next job starts: the process's start for the first (its
# imports are part of its cost), the end of the previous job for each later job of a sweep.
_clock_from = fmlab.STARTED


def build(cfg: DictConfig, datamodule=None, net=None):
    """DataModule (built from the config unless given) and the task around ``net`` (the config's
    own, sized by that data, unless given), with its optimizer and scheduler; fmlab-eval's too."""
    datamodule = instantiate(cfg.data) if datamodule is None else datamodule
    net = base_net(cfg, datamodule.net_args)[0] if net is None else net
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    task = instantiate(cfg.task, net=net, optimizer=instantiate(cfg.optimizer), scheduler=scheduler)
    return datamodule, task


def callback(conf: DictConfig, validated: bool):
    """A configured callback. Without validation, one that watches a val/ metric keeps the
    latest weights instead (monitor=None): derived here, so the run's config stays as given."""
    if not validated and str(conf.get("monitor", "")).startswith("val/"):
        return instantiate(conf, monitor=None)
    return instantiate(conf)


def metric_names(names) -> list[str]:
    """``optimized_metric`` as a list: one name, several (a multi-objective search), or none."""
    return [] if names is None else [names] if isinstance(names, str) else list(names)


def refuse_unscorable(cfg: DictConfig, validates: bool, has_test: bool) -> None:
    """What this run cannot score is refused before the first step (otherwise the run, or every
    trial of a search, would train to its end and then fail): a test split the data lacks, and a
    metric to optimise on a split the run never scores."""
    if cfg.get("test") and not has_test:
        raise FmlabError(
            "test=true, but this data has no test split. Set test=false (validation then scores "
            "the run), or give the data one (data.test_file=... for labelled text, "
            "data.test_fraction=0.1 for a corpus)."
        )
    for name in metric_names(cfg.get("optimized_metric")):
        split, _, metric = name.partition("/")
        if split == "val" and not validates:
            raise FmlabError(
                f"optimized_metric={name!r}: this run has no validation split, so it never logs "
                f"{name}. Give the data one (data.val_size=5000 for CIFAR-10, data.val_fraction="
                "0.1 for a text corpus), optimise a metric the run logs, or set "
                "optimized_metric=null where no sweeper reads it."
            )
        if split == "test" and not cfg.get("test"):
            raise FmlabError(
                f"optimized_metric={name!r}: with test=false this run never logs {name}. "
                f"Optimise val/{metric}, set test=true, or optimized_metric=null where no "
                "sweeper reads it."
            )


def train(cfg: DictConfig) -> dict:
    output_dir = Path(cfg.paths.output_dir)
    checks.check_job(cfg)
    resume.check_options(cfg)
    torch_threads, sharing = threads.choose(cfg.get("torch_threads"))  # before anything computes
    L.seed_everything(cfg.seed, workers=True)

    datamodule, source, transfer = instantiate(cfg.data), None, None
    if cfg.get("init_from"):  # before the net is sized: the tokenizer sets the vocabulary
        take_tokenizer(datamodule, source := read_init_from(cfg.init_from), cfg.init_from)
    # init_from loads into the net before the task wraps it: LoRA adapts the net it starts from.
    net, transfer = base_net(cfg, datamodule.net_args, source)
    if transfer:  # the file's bytes: a table row is stale once it is made again (run.identity)
        transfer["sha256"] = file_sha256(Path(transfer["from"]))
    datamodule, task = build(cfg, datamodule, net)
    refuse_unscorable(cfg, datamodule.has_val, datamodule.has_test)
    config = OmegaConf.to_container(cfg, resolve=True)
    task.hparams["config"] = config  # plain dict: the checkpoint rebuilds its run (fmlab-eval)
    # What sized the net: every reader rebuilds it so (fmlab.techniques.rebuild), without the data.
    task.hparams["net_args"] = {  # plain ints (numpy's would need pickle to load)
        k: int(v) if isinstance(v, numbers.Integral) else v for k, v in datamodule.net_args.items()
    }
    if (done := identity.finished(output_dir, config)) is not None:
        log.info("This run is already complete: %s", output_dir / "results.json")
        return done
    ckpt_path = resume.checkpoint_to_resume(cfg, output_dir, config)
    if ckpt_path:
        checkpoint = load_checkpoint(ckpt_path)
        check_fits(task, {"state_dict": task.full_state(checkpoint)})  # LoRA: the same base?

    # Training time alone (no setup, no testing) for the record's throughput. It also enforces
    # trainer.max_time: Lightning ignores max_time when a Timer callback is already given.
    timer = Timer(duration=cfg.trainer.get("max_time"))
    callbacks = [
        callback(c, datamodule.has_val) for c in (cfg.get("callbacks") or {}).values() if c
    ]
    final = FinalValidation()
    callbacks += [
        timer,
        final,
        RandomState(),
        StopOnNonFinite(),
        Preemption(output_dir / "checkpoints"),
    ]
    if sharing:  # torch_threads=auto: the cores other processes leave, looked at as it trains
        callbacks.append(sharing)
    if pruning := search.pruning(cfg, output_dir):  # a trial of an Optuna search: may be pruned
        callbacks.append(pruning)
    loggers = instantiate_loggers(cfg.get("logger"), wandb_id=resume.wandb_run_id(output_dir))
    if not loggers:  # logger=none: Lightning refuses a learning-rate monitor with nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        max_time=None,
        profiler=cfg.trainer.get("profiler") or NoProfiler(),
        plugins=[AtomicCheckpointIO()],
    )
    with closing_loggers(loggers):  # W&B: failed (exit code 1) if anything below raises
        for logger in loggers:  # W&B starts its run here
            logger.log_hyperparams(config)
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
        if datamodule.has_val and final.validated_at != trainer.global_step:
            # Not validated at its last step (e.g. resumed at max_steps): the final weights, once.
            trainer.validate(task, datamodule=datamodule, verbose=False)
        # Read now: test(ckpt_path=best) restores the Timer's state from that checkpoint too.
        train_s = timer.time_elapsed("train")
        # Monotonic, as fmlab.STARTED; None where no step ran (a run resumed at its end).
        first_step, last_step = timer.start_time("train"), timer.end_time("train")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

        checkpoint = trainer.checkpoint_callback
        # Read before testing: test(ckpt_path=best) restores the callback's state from that file.
        saved = {
            "best": getattr(checkpoint, "best_model_path", None) or None,
            "last": getattr(checkpoint, "last_model_path", None) or None,
        }
        tested = None
        pruned = pruning is not None and pruning.pruned_epoch is not None
        if cfg.get("test") and not pruned:
            best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
            ckpt_path = best if datamodule.has_val and best else None  # None: the final weights
            tested = ckpt_path or "final weights"
            results = trainer.test(task, datamodule=datamodule, ckpt_path=ckpt_path)
            metrics.update({k: float(v) for k, v in results[0].items()})

    # A language model's tokens/s, FLOPs per token, FLOP/s and MFU (fmlab.metrics.flops); others
    # have none.
    throughput = getattr(task, "throughput", lambda *_: {})(train_s, trainer.global_step)
    global _clock_from
    started, _clock_from = _clock_from, time.monotonic()
    record = {
        "status": "pruned" if pruned else "complete",
        "task": cfg.task_name,
        "metrics": metrics,
        "optimized_metric": config.get("optimized_metric"),
        "optuna": pruning.record() if pruning else None,  # study, trial number, pruned_epoch
        "tested": tested,
        "checkpoints": saved,
        "data": datamodule.record,
        "transfer": transfer,  # what init_from loaded into the net, or None
        "parameters": {  # LoRA or a frozen backbone train a fraction of them
            "trainable": sum(p.numel() for p in task.parameters() if p.requires_grad),
            "total": sum(p.numel() for p in task.parameters()),
        },
        **getattr(task, "run_record", {}),  # what a task adds: a GAN's sample grids, FID features
        "timing": {  # what is not training is start-up and finish: a run's fixed costs
            "wall_s": _clock_from - started,
            "startup_s": (first_step or _clock_from) - started,  # imports, data, net, loggers
            "train_s": train_s,
            "finish_s": _clock_from - (last_step or _clock_from),  # test, loggers' finish
            "train_steps": trainer.global_step,
            "train_steps_per_s": trainer.global_step / train_s if train_s else None,
            **throughput,
        },
        "environment": environment(),
        # How many, and why: a shared machine slows a run.
        "torch_threads": {**torch_threads, **(sharing.record() if sharing else {})},
        "output_dir": str(output_dir.resolve()),
        "config": config,
    }
    if trainer.is_global_zero:  # one record per job, however many DDP ranks ran it
        write_json_atomic(output_dir / "results.json", record)
        timing = record["timing"]
        log.info(
            "Results: %s (%.1f s: %.1f starting, %.1f training, %.1f finishing)",
            output_dir / "results.json",
            *(timing[k] for k in ("wall_s", "startup_s", "train_s", "finish_s")),
        )
    return record


def optimized_value(record: dict) -> float | list[float] | None:
    """The metric a sweeper optimises (a list of them for a multi-objective search); a name no
    run logs is an error, never a silent None. A pruned run raises Optuna's TrialPruned."""
    names = record["optimized_metric"]
    if names is None:
        return None
    search.raise_if_pruned(record)
    for name in metric_names(names):
        if name not in record["metrics"]:
            raise FmlabError(
                f"optimized_metric={name!r} was not logged by this run; it logged "
                f"{sorted(record['metrics'])}. Set optimized_metric to one of those."
            )
    if isinstance(names, str):
        return record["metrics"][names]
    return [record["metrics"][name] for name in names]


def run_job(cfg: DictConfig) -> float | list[float] | None:
    """One job of `fmlab-train` (see fmlab.cli), in every process and rank that runs it. Its run
    folder is this process's alone while it runs (fmlab.run.runlock): nothing below reads or resumes
    a folder another live process is writing."""
    prepare_job(cfg)
    with runlock.held(Path(cfg.paths.output_dir)), search.failing_trial():
        return search.kept(optimized_value(finished_record(cfg) or train(cfg)))
