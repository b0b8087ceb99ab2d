"""The ``sim`` extra: matplotlib for the report's plots, tqdm for progress bars.

``pip install 'attune-engine[sim]'`` installs both (``scripts/setup.sh`` does). Everything in
``simulations`` imports without them; the code that draws a plot or a bar imports them through
``require``, and the commands check ``missing_extra`` before any work, so a missing one is a
one-line message naming the extra and the pip command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRA = "sim"
INSTALL = f"pip install 'attune-engine[{EXTRA}]'"


def missing_extra(*modules: str) -> str | None:
    """None when every module imports; else why not, for the first one that does not.

    >>> missing_extra("json") is None
    True
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            return _message(module)
    return None


def require(module: str) -> ModuleType:
    """``module`` (e.g. ``"matplotlib.pyplot"``), imported; ImportError naming the extra if not."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(_message(module)) from exc


def _message(module: str) -> str:
    name = module.partition(".")[0]
    return f"{name} is not installed: it comes with attune's '{EXTRA}' extra ({INSTALL})"
