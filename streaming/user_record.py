"""Bytes of one user's processing state: the JSON document and the binary changelog record.

Two encodings of the same document ``{"engine", "pins", "pending", "seen", "seen_ts",
"counters", "notes"}`` (``engine``: the user's arrays by name, or None):

- version 1, JSON with base64 arrays (``encode_json``): readable by anyone, used for a
  user's data export (checkpoints of earlier versions hold it too);
- version 2, binary (``encode_binary``), what the workers write to the changelog and the
  embedded learner to its checkpoints: a version
  byte, the length of a compact JSON header (uint32, little endian), the header (the book and
  each array's name, dtype and shape), then the arrays' raw bytes in the header's order.
  Encoding it costs a fraction of version 1 (no base64, no float text for the arrays).

``decode`` reads both (a version-1 record starts with ``{``) and rejects anything else with a
clear error.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np
import orjson

JSON_VERSION = 1
BINARY_VERSION = 2
_HEADER = struct.Struct("<BI")


def encode_json(doc: dict[str, Any]) -> bytes:
    """Version 1: the document as JSON, arrays as ``{"dtype", "shape", "data": base64}``."""
    engine = doc["engine"]
    out = {
        **doc,
        "version": JSON_VERSION,
        "engine": {k: pack_array(v) for k, v in engine.items()} if engine is not None else None,
    }
    return json.dumps(out, separators=(",", ":"), default=_listify).encode("utf-8")


def encode_binary(doc: dict[str, Any]) -> bytes:
    """Version 2: header + raw arrays (see the module docstring)."""
    engine = doc["engine"] or {}
    arrays = [np.asarray(a, order="C") for a in engine.values()]
    header = orjson.dumps(
        {
            **doc,
            "engine": None
            if doc["engine"] is None
            else [[k, a.dtype.str, a.shape] for k, a in zip(engine, arrays, strict=True)],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    return b"".join(
        [_HEADER.pack(BINARY_VERSION, len(header)), header, *(a.tobytes() for a in arrays)]
    )


def decode(data: bytes) -> dict[str, Any]:
    """Either version back to the document (arrays as NumPy arrays, contexts as lists)."""
    if data[:1] == b"{":
        doc = json.loads(data)
        if doc.get("version") != JSON_VERSION:
            raise ValueError(_unsupported(doc.get("version")))
        if doc["engine"] is not None:
            doc["engine"] = {k: unpack_array(v) for k, v in doc["engine"].items()}
        return doc
    if len(data) < _HEADER.size or data[0] != BINARY_VERSION:
        raise ValueError(_unsupported(data[0] if data else None))
    _, n = _HEADER.unpack_from(data)
    doc = orjson.loads(data[_HEADER.size : _HEADER.size + n])
    if doc["engine"] is not None:
        offset, engine = _HEADER.size + n, {}
        for name, dtype, shape in doc["engine"]:
            dt = np.dtype(dtype)
            count = int(np.prod(shape))
            arr = np.frombuffer(data, dtype=dt, count=count, offset=offset)
            engine[name] = arr.reshape(shape).copy()
            offset += count * dt.itemsize
        doc["engine"] = engine
    return doc


def _unsupported(version: Any) -> str:
    return (
        f"user state version {version!r} is not supported (this attune reads versions "
        f"{JSON_VERSION} and {BINARY_VERSION})"
    )


def _listify(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def pack_array(arr: np.ndarray) -> dict[str, Any]:
    """An array as JSON: ``{"dtype", "shape", "data": base64 of the raw bytes}``."""
    arr = np.asarray(arr, order="C")  # not ascontiguousarray: it turns 0-d into 1-d
    return {
        "dtype": arr.dtype.str,
        "shape": list(arr.shape),
        "data": base64.b64encode(arr.tobytes()).decode("ascii"),
    }


def unpack_array(doc: dict[str, Any]) -> np.ndarray:
    """Inverse of ``pack_array`` (a fresh, writable array)."""
    raw = base64.b64decode(doc["data"])
    return np.frombuffer(raw, dtype=np.dtype(doc["dtype"])).reshape(tuple(doc["shape"])).copy()
