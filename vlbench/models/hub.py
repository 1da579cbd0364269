"""Hugging Face Hub access for model weights: one quick reachability check instead of minutes of retries.

When the Hub cannot be reached (or $HF_HUB_OFFLINE is set), weights are loaded from the local cache
only, with huggingface_hub's offline mode switched on for the duration of the load; weights that
are not cached fail at once with one line saying how to proceed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

PROBE_TIMEOUT_S = 3.0


def _constants():  # late import: huggingface_hub is a dependency of open_clip and transformers
    from huggingface_hub import constants

    return constants


def offline_by_setting() -> bool:
    """$HF_HUB_OFFLINE (or $TRANSFORMERS_OFFLINE) as huggingface_hub read it."""
    return bool(_constants().HF_HUB_OFFLINE)


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """One HEAD request to the Hub endpoint (proxies from the environment apply), no retries."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def hub_access() -> Iterator[str | None]:
    """Yields None when the Hub may be used, else why not ("HF_HUB_OFFLINE is set", "... cannot be reached").

    In the offline cases huggingface_hub's offline switch is on inside the block (restored after),
    so cached files load without a network request and missing ones fail without retries.
    """
    if offline_by_setting():
        yield "HF_HUB_OFFLINE is set"
        return
    if hub_reachable():
        yield None
        return
    constants = _constants()
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield "the Hugging Face Hub cannot be reached"
    finally:
        constants.HF_HUB_OFFLINE = previous


def cached_snapshot_pin(repo_id: str, revision: str | None = None) -> str | None:
    """What a model repo's snapshot in the local Hugging Face cache holds, at ``revision`` (a branch,
    tag or commit; default main): its commit and every file's path, size and times. None when the
    cache has no such snapshot. Reads the cache folder only (no network, no model library): a
    download of another revision moves the ref and so changes the pin, as does any new or replaced
    file of the snapshot."""
    from vlbench.models.base import files_stamp

    repo = Path(_constants().HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / (revision or "main")
    try:
        commit = ref.read_text().strip() if ref.is_file() else (revision or "")
    except OSError:
        return None
    snapshot = repo / "snapshots" / commit
    if not commit or not snapshot.is_dir() or not any(snapshot.iterdir()):
        return None
    return f"hf-cache:{repo_id}@{commit}|{files_stamp(snapshot)}"


def offline_message(spec_id: str, reason: str, local_form: str) -> str:
    """The one line for weights that are neither cached nor downloadable."""
    return (
        f"cannot load {spec_id}: its weights are not in the local cache and {reason}; download them where there "
        f"is network (they are cached under ~/.cache/huggingface), or point at a local copy ({local_form})"
        + ("" if reason.startswith("HF_HUB_OFFLINE") else ", or set HF_HUB_OFFLINE=1 to skip the network check")
    )
