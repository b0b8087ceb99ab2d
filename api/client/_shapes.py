"""``bandit.shapes`` for the client, without importing the ``bandit`` package.

The request-shape rules have one home, ``bandit/shapes.py`` (standard library only). Importing
it as ``bandit.shapes`` would run ``bandit/__init__``, which loads the engine and numba: a
second of start-up and a JIT runtime in every product process that only wants the client. So
the file is loaded on its own, unless the package is loaded already.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING


def _load() -> ModuleType:
    if "bandit" in sys.modules:
        import bandit.shapes

        return bandit.shapes
    spec = importlib.util.find_spec("bandit")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("api.client needs attune's bandit/shapes.py (install attune-engine)")
    path = Path(next(iter(spec.submodule_search_locations))) / "shapes.py"
    file_spec = importlib.util.spec_from_file_location("api.client._bandit_shapes", path)
    if file_spec is None or file_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from bandit import shapes
else:
    shapes = _load()

__all__ = ["shapes"]
