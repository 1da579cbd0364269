"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class VLBenchError(Exception):
    """An error caused by user input (a spec, a path, a task file), not by a bug."""


class UnknownNameError(VLBenchError):
    """A name (task, model, adapter, suite...) that no registry knows."""


class DatasetNotFoundError(VLBenchError):
    """A task's data is not where we looked."""


class NothingRanError(DatasetNotFoundError):
    """--skip-missing left no task to run; ``runs`` holds each model's outcomes (all "missing")."""

    def __init__(self, message: str, runs: list):
        super().__init__(message)
        self.runs = runs


class TaskSpecError(VLBenchError):
    """A task YAML file is invalid."""

    def __init__(self, path: object, field: str, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"invalid task file {path}: field '{field}': {problem}")


class ModelLoadError(VLBenchError):
    """A model spec that cannot be turned into a model."""


class StaleModelRecordError(ModelLoadError):
    """A model built after its identity was read from the embedding cache does not match it."""


class CapabilityError(VLBenchError):
    """A model that lacks what a task needs (e.g. dense features for segmentation)."""


class UnsafePickleError(VLBenchError):
    """A pickle that tries to build something other than the allowed plain objects."""
