"""A task's result on disk: its per-sample records, artifacts and result file, written so that a crash loses at
most the task in flight and never leaves half a file.

``ResultWriter`` streams the records to a temporary samples file while the kind predicts, writes the
artifacts, publishes the samples and then the result JSON (``build_result``: the one place a ``Result`` is
made), and removes the samples of the result it replaced; on any failure it removes what it had started.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterable

from vlbench.results import schema as result_schema
from vlbench.results.housekeeping import writing
from vlbench.results.io import SampleWriter, new_run_id, utc_now, write_json, write_json_gz


def build_result(*, model: Any, fingerprint: dict[str, Any], task: Any, config_hash: str, run_settings: dict[str, Any], located: Any, inputs: dict[str, Any],
                 n: int, decisions: Any, metrics: dict[str, float], samples: str, artifacts: dict[str, Any], env: dict[str, Any],
                 timing: dict[str, Any], ci: dict[str, Any], bootstrap: Any, ties: dict[str, Any] | None) -> result_schema.Result:
    """A task's ``Result``; ``model`` is its ``ModelSpec``, ``fingerprint`` the model's (with ``source_stamp``)."""
    return result_schema.Result(
        schema_version=result_schema.SCHEMA_VERSION,
        created=utc_now(),
        model=result_schema.ModelInfo(model.id, model.adapter, fingerprint["source_stamp"], fingerprint),
        task=result_schema.TaskInfo(
            name=task.name, kind=task.kind, version=task.version, config_hash=config_hash, file=str(task.source_file),
            dataset={**located.describe(), "n": n}, files=task.file_records(), inputs=inputs, run_settings=run_settings,
            overrides=task.overrides, protocol_used=decisions.protocol, config=task.config,
        ),
        metrics=metrics, main_metric=task.main_metric, samples=samples, artifacts=artifacts, env=env, timing=timing,
        ci=ci, bootstrap=bootstrap, ties=ties,
    )


class ResultWriter:
    """The files of one (model, task, config hash) result at ``path``."""

    def __init__(self, path: Path):
        self.path = path
        self.previous = result_schema.read_quietly(path)  # the result this one replaces, if any
        with writing(path.parent):
            self.samples = SampleWriter(result_schema.samples_path(path, new_run_id()))

    def records(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stream the records to the samples file as they come, and return them."""
        kept = []
        for record in records:
            with writing(self.path.parent):
                self.samples.write(record)
            kept.append(record)
        return kept

    def artifacts(self, payloads: dict[str, Any]) -> dict[str, Any]:
        """Write the artifacts (gzip JSON beside the result); their entries for the result."""
        entries = {}
        with writing(self.path.parent):
            for name, payload in payloads.items():
                artifact = result_schema.artifact_path(self.path, name)
                entries[name] = {"file": artifact.name, "sha256": write_json_gz(artifact, payload)}
        return entries

    def discard(self) -> None:
        """Remove what this writer started (before the samples were published)."""
        self.samples.discard()
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # the folder this run created, if nothing else is in it

    def publish_samples(self) -> str:
        with writing(self.path.parent):
            self.samples.commit()
        return self.samples.path.name

    def publish(self, result: result_schema.Result) -> None:
        """Write the result atomically, then remove the samples of the result it replaced."""
        try:
            with writing(self.path.parent):
                write_json(self.path, result.to_json())
        except BaseException:
            current = result_schema.read_quietly(self.path)
            if current is None or current.samples != self.samples.path.name:
                self.samples.path.unlink(missing_ok=True)  # no result names these samples; the old result stays as it was
            raise
        if self.previous is not None and self.previous.samples != self.samples.path.name:
            old = result_schema.inside(self.path.parent, self.previous.samples)  # never a file outside this folder
            if old is not None and old.name.endswith(result_schema.SAMPLES_SUFFIX):
                old.unlink(missing_ok=True)
