"""``--hf-hub`` for webdataset sources: download a dataset repo (CLIP_benchmark's
``clip-benchmark/wds_*``, DataComp's ``djghosh/wds_*_test``) into the data root."""

from __future__ import annotations

from pathlib import Path

from vlbench.errors import VLBenchError
from vlbench.hub_access import endpoint, require_hub


def mirror_patterns(split: str | None) -> list[str]:
    """The split's shards and the folder's text files (class names, templates, dataset type); the whole
    repo for a source without a split."""
    return ["*"] if split is None else [f"{split}/*", "*.txt"]


def download_mirror(repo_id: str, target: Path, split: str | None) -> Path:
    """Download ``repo_id``'s ``split`` into ``target`` with huggingface_hub's progress bars.

    Files already complete in ``target`` are kept and interrupted ones resume, so running again
    after a failure continues where it stopped.
    """
    from huggingface_hub import snapshot_download

    require_hub(f"dataset {repo_id}")
    target.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(repo_id=repo_id, repo_type="dataset", local_dir=str(target), allow_patterns=mirror_patterns(split))
    except Exception as exc:  # network, authentication, missing repo: one line, the cause kept
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VLBenchError(f"could not download {endpoint()}/datasets/{repo_id} into {target}: {message}; run again to resume") from exc
    return target
