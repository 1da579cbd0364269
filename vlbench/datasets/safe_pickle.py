"""A restricted unpickler for dataset files we did not write (CIFAR batches, RefCOCO refs).

Plain containers, strings and numbers need no imports and always load. Anything that needs a
global (a class or a function) is refused unless it is in the caller's allow-list, so a crafted
pickle cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

from vlbench.errors import UnsafePickleError

# Protocol-2 pickles written by Python 3 rebuild bytes with _codecs.encode(text, "latin1").
PLAIN: frozenset[tuple[str, str]] = frozenset({("_codecs", "encode")})
NUMPY_ARRAYS: frozenset[tuple[str, str]] = PLAIN | frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | {("numpy", "ndarray"), ("numpy", "dtype")}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, allowed: frozenset[tuple[str, str]], source: str, **kwargs: Any):
        super().__init__(file, **kwargs)
        self.allowed, self.source = allowed, source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {self.source}: it asks for '{module}.{name}', but only plain data is allowed there"
        )


def load_pickle(path: str | Path, allowed: frozenset[tuple[str, str]] = PLAIN, encoding: str = "latin1") -> Any:
    """Load a pickle that may only build plain data (plus the allowed globals)."""
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, allowed, str(path), encoding=encoding).load()
        except UnsafePickleError:
            raise
        except Exception as exc:
            raise UnsafePickleError(f"cannot read pickle {path}: {exc}") from exc
