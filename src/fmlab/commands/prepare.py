"""fmlab-prepare: a text corpus tokenised once into its token store (fmlab.data.prepare), its
folder and summary printed."""

import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from fmlab.data.prepare import MANIFEST, PrepareSpec, ensure_store
from fmlab.errors import FmlabError
from fmlab.run.files import size


def prepare_job(cfg) -> Path:
    """fmlab-prepare: the store of ``cfg.data``, its folder and summary on stdout."""
    target = cfg.data.get("_target_", "")
    if not target.endswith("TextDataModule") or "Labelled" in target:
        raise FmlabError(
            f"fmlab-prepare prepares text corpora for language models, and data={target!r} is "
            "not one. Choose a text data config (data=tiny_shakespeare, data=wikitext2, "
            "data.corpus=<your text>) or an experiment that trains on one."
        )
    start = time.perf_counter()
    folder = ensure_store(PrepareSpec.from_config(OmegaConf.to_container(cfg.data, resolve=True)))
    seconds = time.perf_counter() - start
    manifest = json.loads((folder / MANIFEST).read_text()) if (folder / MANIFEST).is_file() else {}
    print(folder)
    for split, info in manifest.get("splits", {}).items():
        print(f"{split}: {info['tokens']:,} tokens, {len(info['shards'])} shard(s)", end="")
        chars = f"{info['chars']:,} characters"
        # One text split by characters (tiny-shakespeare) has no documents to count.
        print(f", {chars}, {info['documents']:,} documents" if info["documents"] else f", {chars}")
    text = sum(s.get("bytes", 0) for s in manifest.get("splits", {}).values())
    print(f"{size(text)} of text in {seconds:.1f} s ({text / seconds / 1e6:.1f} MB/s)")
    return folder
