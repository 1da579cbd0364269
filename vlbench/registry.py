"""A generic name -> object registry.

Objects come from three places: the ``register`` decorator (inside vlbench or in user code),
an entry-point group of installed packages, and ``module:attr`` references (from registry.yaml).
Unknown names fail with did-you-mean suggestions.
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Callable, Generic, Iterable, TypeVar

from vlbench.errors import UnknownNameError, VLBenchError

T = TypeVar("T")


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean: a, b?)' hint, or an empty string when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        lowered = name.lower()
        close = [c for c in candidates if lowered and lowered in c.lower()][:3]
    return f" (did you mean: {', '.join(close)}?)" if close else ""


def import_reference(reference: str) -> object:
    """Import ``package.module:attribute`` (attribute may be dotted)."""
    module_name, sep, attr_path = reference.partition(":")
    if not sep or not module_name or not attr_path:
        raise VLBenchError(f"'{reference}' is not a 'module:attribute' reference")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise VLBenchError(f"cannot import module '{module_name}' for '{reference}': {exc}") from exc
    except Exception as exc:  # the module itself is broken (a syntax error, an error at import time)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise VLBenchError(f"module '{module_name}' for '{reference}' failed to import: {type(exc).__name__}: {first} (--debug shows the traceback)") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise VLBenchError(f"'{reference}': module '{module_name}' has no attribute '{attr_path}'") from exc
    return obj


class Registry(Generic[T]):
    """Maps names to objects of one family (adapters, task kinds, dataset readers...)."""

    def __init__(self, family: str, entry_point_group: str | None = None, entry_point_prefix: str = "",
                 check: Callable[[str, T], None] | None = None):
        self.family = family
        #: Called with (name, object) for everything that is registered, however it arrives (decorator,
        #: entry point, reference); raises VLBenchError to refuse it.
        self.check = check
        self.entry_point_group = entry_point_group
        #: Only the group's entry points named ``<prefix><name>`` are this registry's, under ``<name>``
        #: (one group for every kind's dataset readers: ``classification.myformat = pkg.module:Reader``).
        self.entry_point_prefix = entry_point_prefix
        self._items: dict[str, T] = {}
        self._references: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")``."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, replace: bool = False) -> None:
        if not replace and name in self._items and self._items[name] is not obj:
            raise VLBenchError(f"{self.family} '{name}' is registered twice")
        if self.check is not None:
            self.check(name, obj)
        self._items[name] = obj

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or not self.entry_point_group:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            if not ep.name.startswith(self.entry_point_prefix):
                continue
            name = ep.name[len(self.entry_point_prefix):]
            if name in self._items:
                continue
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plugin must not break every other name
                raise VLBenchError(
                    f"{self.family} '{ep.name}' from entry point '{ep.value}' failed to load: {exc}"
                ) from exc
            self.add(name, loaded, replace=True)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted({*self._items, *self._references})

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._items or name in self._references

    def add_reference(self, name: str, reference: str) -> None:
        """Register ``module:attr``, imported on first use (registry.yaml entries)."""
        if name not in self._items:
            self._references[name] = reference

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._items and name in self._references:
            self.add(name, import_reference(self._references.pop(name)), replace=True)  # type: ignore[arg-type]
        if name in self._items:
            return self._items[name]
        known = [*self._items, *self._references]
        raise UnknownNameError(f"unknown {self.family} '{name}'{did_you_mean(name, known)}")
