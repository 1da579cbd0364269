"""Model weights from the Hugging Face Hub: loads that do not wait on an unreachable Hub, and pins of
cached snapshots.

When the Hub cannot be reached (or $HF_HUB_OFFLINE is set), weights are loaded from the local cache
only, with huggingface_hub's offline mode switched on for the duration of the load (``vlbench.hub_access``);
weights that are not cached fail at once with one line saying how to proceed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from vlbench import hub_access as access
from vlbench.hub_access import _constants
from vlbench.stamps import files_stamp

COMMIT = re.compile(r"[0-9a-f]{40}")


def cached_snapshot_pin(repo_id: str, revision: str | None, weights: Sequence[str]) -> str | None:
    """What a model repo's snapshot in the local Hugging Face cache holds, at ``revision`` (a branch,
    tag or commit; default main): its commit and every file's path, size and times. None when the
    cache has no such snapshot, when it holds none of the ``weights`` file names (a load would fail,
    or build an untrained model), or when a load would fetch another commit (``snapshot_is_current``).
    A download of another revision moves the ref and so changes the pin, as does any new or
    replaced file of the snapshot."""
    repo = Path(_constants().HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / (revision or "main")
    try:
        commit = ref.read_text().strip() if ref.is_file() else (revision or "")
        snapshot = repo / "snapshots" / commit
        if not COMMIT.fullmatch(commit) or not any((snapshot / name).is_file() for name in weights):
            return None
        if not snapshot_is_current(repo_id, revision, commit):
            return None
        return f"hf-cache:{repo_id}@{commit}|{files_stamp(snapshot)}"
    except OSError:  # a cache being cleaned or not readable: load as usual
        return None


def snapshot_is_current(repo_id: str, revision: str | None, commit: str) -> bool:
    """Whether loading ``repo_id`` at ``revision`` now would read the snapshot of ``commit``: yes for a
    commit hash, and when loads are offline (HF_HUB_OFFLINE, or no Hub to reach); else the Hub must
    name that commit for the revision (one small request)."""
    if (revision is not None and COMMIT.fullmatch(revision)) or access.offline_by_setting() or not access.hub_reachable():
        return True
    return remote_commit(repo_id, revision) == commit


def remote_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit the Hub names for a model repo's revision, or None when it does not answer."""
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(repo_id, revision=revision, timeout=access.PROBE_TIMEOUT_S).sha
    except Exception:  # any failure (gated, missing, network): not current, so the model is loaded
        return None


def offline_message(spec_id: str, reason: str, local_form: str) -> str:
    """The one line for weights that are neither cached nor downloadable."""
    return (
        f"cannot load {spec_id}: its weights are not in the local cache and {reason}; download them where there "
        f"is network (they are cached under ~/.cache/huggingface), or point at a local copy ({local_form})"
        + ("" if reason.startswith("HF_HUB_OFFLINE") else ", or set HF_HUB_OFFLINE=1 to skip the network check")
    )
