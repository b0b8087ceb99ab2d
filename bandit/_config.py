"""Compilation flags for every numba kernel, in one place.

``fastmath`` lets LLVM vectorize the dot-product reductions; the kernels never rely on NaN or
infinity semantics (a NaN check would be compiled away, so the kernels take flags instead).
``cache`` keeps compiled kernels on disk between processes.
"""

from collections.abc import Callable
from typing import Any

import numba

# A batch of at least this many requests takes the parallel kernel; fewer take the serial one,
# because waking the thread pool costs more than a handful of decisions.
PARALLEL_MIN_BATCH = 64


def serial(func: Callable[..., Any]) -> Any:
    """Per-request kernels: single-threaded and releasing the GIL."""
    return numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")(func)


def parallel(func: Callable[..., Any]) -> Any:
    """Batch kernels (training, simulation): ``prange`` loops across both cores."""
    return numba.njit(cache=True, fastmath=True, parallel=True, error_model="numpy")(func)
