"""Compilation flags for every numba kernel, in one place.

``fastmath`` lets LLVM vectorize the dot-product reductions; the kernels never rely on NaN or
infinity semantics. ``cache`` keeps compiled kernels on disk between processes.
"""

import numba

SERIAL = {"cache": True, "fastmath": True, "nogil": True, "error_model": "numpy"}
PARALLEL = {"cache": True, "fastmath": True, "parallel": True, "error_model": "numpy"}

# A batch of at least this many requests takes the parallel kernel; fewer take the serial one,
# because waking the thread pool costs more than a handful of decisions.
PARALLEL_MIN_BATCH = 64


def serial(func):  # type: ignore[no-untyped-def]
    return numba.njit(**SERIAL)(func)


def parallel(func):  # type: ignore[no-untyped-def]
    return numba.njit(**PARALLEL)(func)
