"""``from_pretrained`` with one clear error: a local folder always, a hub id only when the hub can
be reached or the id is in the local cache."""

import os
from pathlib import Path

from fmlab.errors import FmlabError


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it: set and not 0/false/no/off."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def from_pretrained(auto_class, name_or_path: str, key: str, prefix: str = "", **kwargs):
    """``auto_class.from_pretrained(name_or_path)``; ``key=prefix + name_or_path`` is how the
    config named it, for the message when neither a folder nor a reachable or cached hub id is
    found."""
    folder = Path(name_or_path).expanduser()
    local = folder.is_dir()
    if not local and (name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1):
        raise FmlabError(
            f"{key}={prefix}{name_or_path} is not a folder. Pass the folder that save_pretrained "
            "wrote (it holds config.json), or a Hugging Face hub id such as openai-community/gpt2."
        )
    try:
        loaded = auto_class.from_pretrained(
            str(folder) if local else name_or_path,
            local_files_only=local or offline(),
            **kwargs,
        )
    except (OSError, ValueError) as err:
        if local:
            raise FmlabError(
                f"{key}={prefix}{name_or_path} is a folder transformers cannot load "
                f"({str(err).splitlines()[0]}). Pass a folder that save_pretrained wrote."
            ) from None
        from huggingface_hub.constants import HF_HUB_CACHE

        why = (
            "HF_HUB_OFFLINE is set, so it is not downloaded"
            if offline()
            else f"it could not be fetched ({str(err).splitlines()[0]})"
        )
        raise FmlabError(
            f"{key}={prefix}{name_or_path} is not in the Hugging Face cache ({HF_HUB_CACHE}) "
            f"and {why}. "
            "Provide it as a folder: on a machine that reaches the hub run "
            f"`AutoModel.from_pretrained({name_or_path!r}).save_pretrained(DIR)` (and the same "
            f"for its tokenizer), copy DIR here and pass {key}={prefix}DIR."
        ) from None
    # transformers hands a model back in eval mode, and Lightning (2.6) no longer puts a module in
    # training mode when fit starts: without this, dropout would stay off for a whole fine-tune.
    # Built as every nn.Module is built, the model trains until a loop says otherwise.
    return loaded.train() if hasattr(loaded, "named_modules") else loaded
