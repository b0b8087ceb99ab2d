"""A byte scanner for the erase tests: where does anything of one user still lie?

A trace is a byte pattern: a text (the user's id, a note) in UTF-8, UTF-16 and UTF-32 (NumPy
keeps strings in UTF-32), or a few consecutive values of one of the user's vectors as float32
and float64, raw or in base64. Files are read raw and, for the containers attune writes,
expanded too: the members of an ``.npz`` and the rows of a ``.parquet`` (whose pages are
compressed) as uncompressed Arrow, so a pattern a compressor hides is still found.
"""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TEXT_ENCODINGS = ("utf-8", "utf-16-le", "utf-32-le")
WINDOW = 3  # consecutive values: specific enough that no other user shares them


def text_traces(name: str, text: str) -> dict[str, list[bytes]]:
    return {name: [text.encode(e) for e in TEXT_ENCODINGS]}


def vector_traces(name: str, values: np.ndarray, avoid: bytes = b"") -> dict[str, list[bytes]]:
    """The first run of ``WINDOW`` distinct values of ``values`` other than 0 and ±1 (what
    every user's arrays share), as float32 and float64 bytes, raw and as the base64 text JSON
    records hold, that is found nowhere in ``avoid``: the same arrays of the other users, who
    can share values with this one (the same messages and the same thumbs give the same
    reward-weighted contexts), and a trace must be this user's alone. The run starts at a
    multiple of 3 values: its bytes then start at a multiple of 3 bytes, so their base64 is a
    substring of the whole array's."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    for i in range(0, len(flat) - WINDOW + 1, 3):
        run = flat[i : i + WINDOW]
        if np.all(np.abs(run) != 0) and np.all(np.abs(run) != 1) and len(set(run)) == WINDOW:
            patterns = _encodings(run)
            if not any(p in avoid for p in patterns):
                return {name: patterns}
    raise ValueError(f"{name}: no run of {WINDOW} distinct values (not 0, ±1) of this user only")


def whole_vector_traces(
    name: str, values: np.ndarray, avoid: bytes = b""
) -> dict[str, list[bytes]]:
    """The whole of ``values`` as one pattern (float32 and float64, raw and base64), for
    arrays whose entries are small sums other users share (a user's reward-weighted
    contexts): any run of a few of them can be another user's too, all of them only when the
    two histories are the same, which ``avoid`` (the other users' arrays) rules out."""
    patterns = _encodings(np.asarray(values, dtype=np.float64).ravel())
    if any(p in avoid for p in patterns):
        raise ValueError(f"{name}: another user's array is the same")
    return {name: patterns}


def rows_bytes(rows: np.ndarray) -> bytes:
    """Other users' vectors (one per row) as ``vector_traces`` looks for them: float32 and
    float64 bytes, raw and in base64."""
    return b"\0".join(_encodings(np.asarray(rows, dtype=np.float64)))


def _encodings(values: np.ndarray) -> list[bytes]:
    """float64 ``values`` as float32 and float64 bytes, raw and as the base64 text JSON
    records hold."""
    raw = [values.astype(np.float32).tobytes(), values.tobytes()]
    return raw + [base64.b64encode(r) for r in raw]


def file_contents(path: Path) -> bytes:
    """The file's bytes, followed by its expanded content for ``.npz`` and ``.parquet``."""
    raw = path.read_bytes()
    parts = [raw]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            parts += [z.read(name) for name in z.namelist()]
    if raw[:4] == b"PAR1":
        table = pq.read_table(io.BytesIO(raw))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        parts.append(sink.getvalue().to_pybytes())
    return b"".join(parts)


def folder_contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (SQLite's ``-wal`` and ``-shm`` included), by relative path."""
    return {
        str(p.relative_to(folder)): file_contents(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def find(blobs: Mapping[str, bytes], traces: Mapping[str, Iterable[bytes]]) -> dict[str, list[str]]:
    """For each trace found, where: the blobs holding one of its patterns."""
    found: dict[str, list[str]] = {}
    for name, patterns in traces.items():
        pats = list(patterns)
        where = [w for w, blob in blobs.items() if any(p in blob for p in pats)]
        if where:
            found[name] = where
    return found
