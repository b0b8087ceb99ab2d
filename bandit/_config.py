"""Compilation flags for every numba kernel, in one place.

``fastmath`` lets LLVM vectorize the dot-product reductions; the kernels never rely on NaN or
infinity semantics (a NaN check would be compiled away, so the kernels take flags instead).
``cache`` keeps compiled kernels on disk between processes.

numba keys a cached kernel by its own source file only, so a kernel that calls one from another
file (``decide`` calls ``shared_terms``) kept running the callee's old code after an edit. The
cache therefore lives in a folder named by a hash of every kernel source (unless
``NUMBA_CACHE_DIR`` says otherwise): any edit compiles everything afresh.
"""

import hashlib
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba


def _cache_dir() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted([here / "_config.py", *(here / "_kernels").glob("*.py")]):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(base / "attune" / f"numba-{digest.hexdigest()[:16]}")


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _cache_dir()  # type: ignore[attr-defined]

# A batch of at least this many requests takes the parallel kernel; fewer take the serial one,
# because waking the thread pool costs more than a handful of decisions.
PARALLEL_MIN_BATCH = 64


def serial(func: Callable[..., Any]) -> Any:
    """Per-request kernels: single-threaded and releasing the GIL."""
    return numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")(func)


def parallel(func: Callable[..., Any]) -> Any:
    """Batch kernels (training, simulation): ``prange`` loops across both cores.

    Compiled from a copy of ``func`` named ``<name>_parallel``. numba's on-disk cache keys a
    kernel by its function's module and name, not by ``parallel``, so the serial and parallel
    builds of one function shared their cache entries and whichever compiled first ran for
    both: a cache written by a parallel build made ``decide_serial`` start the OpenMP pool,
    whose idle workers then spun on the other core (a server's, or the load generator's).
    """
    twin = types.FunctionType(
        func.__code__, func.__globals__, f"{func.__name__}_parallel", func.__defaults__
    )
    twin.__qualname__ = f"{func.__qualname__}_parallel"
    twin.__module__, twin.__doc__ = func.__module__, func.__doc__
    return numba.njit(cache=True, fastmath=True, parallel=True, error_model="numpy")(twin)
