"""Erasure beyond the log: the files attune keeps next to it that can name a user.

``attune train`` writes the interactions it trained on to ``<data_dir>/exports`` and
publishes models to ``<data_dir>/models`` (keeping the last few). An erased user must leave
both: ``scrub_files`` rewrites every such file that holds the user without their rows (same
name, atomically); nothing else of the file changes. A deleted user's id is a
``tenant/user`` key, as in both kinds of file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import polars as pl

from collab.watch import forget_users

log = logging.getLogger(__name__)
EXPORTS = "exports"
MODELS = "models"


def scrub_exports(folder: Path, keys: list[str]) -> list[Path]:
    """Rewrite each ``*.parquet`` of ``folder`` with a ``user_id`` column without these users'
    rows; returns the files rewritten."""
    rewritten: list[Path] = []
    if not folder.is_dir():
        return rewritten
    for path in sorted(folder.glob("*.parquet")):
        frame = pl.read_parquet(path)
        if "user_id" not in frame.columns:
            continue
        kept = frame.filter(~pl.col("user_id").is_in(keys))
        if kept.height == frame.height:
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".scrub-", suffix=".parquet")
        os.close(fd)
        try:
            kept.write_parquet(tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        rewritten.append(path)
    return rewritten


def scrub_files(data_dir: Path, keys: list[str]) -> list[Path]:
    """Every export and kept model under ``data_dir`` rewritten without these users."""
    done = scrub_exports(data_dir / EXPORTS, keys)
    done += forget_users(data_dir / MODELS, keys)
    if done:
        log.info("erasure rewrote %d file(s): %s", len(done), ", ".join(p.name for p in done))
    return done
