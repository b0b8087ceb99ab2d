"""Publishing models to a folder and picking up new versions without a restart.

A models folder holds ``cf-<version>.npz`` files (written atomically, so a reader never sees
half a file); the highest version is the current model. ``attune train`` publishes there in
the embedded mode; workers and the service run a ``ModelWatcher`` on it and call
``warm_start`` from its callback.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from collab.model import CFModel

_NAME = re.compile(r"^cf-(\d+)\.npz$")


def model_path(models_dir: str | Path, version: int) -> Path:
    return Path(models_dir) / f"cf-{int(version)}.npz"


def publish(model: CFModel, models_dir: str | Path, *, keep: int = 3) -> Path:
    """Save ``model`` as ``cf-<version>.npz`` in ``models_dir``; keep the newest ``keep`` files.

    Raises ``ValueError`` if a model with the same or a higher version is already published.
    """
    current = latest_version(models_dir)
    if current is not None and current >= model.version:
        raise ValueError(
            f"{models_dir}: version {current} is already published; a new model "
            f"needs a higher version than {model.version}"
        )
    path = model_path(models_dir, model.version)
    model.save(path)
    for old in sorted(_versions(models_dir))[:-keep] if keep > 0 else []:
        model_path(models_dir, old).unlink(missing_ok=True)
    return path


def forget_users(models_dir: str | Path, user_keys: list[str]) -> list[Path]:
    """Rewrite every kept model of ``models_dir`` that knows one of these users without them
    (same version, atomically); returns the files rewritten. An erasure calls it."""
    rewritten = []
    for version in _versions(models_dir):
        path = model_path(models_dir, version)
        model = CFModel.load(path)
        scrubbed = model.without(user_keys)
        if scrubbed is not model:
            scrubbed.save(path)
            rewritten.append(path)
    return rewritten


def model_to_bytes(model: CFModel) -> bytes:
    """The model's npz file as bytes (what the Kafka models topic carries)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        model.save(path)
        return path.read_bytes()


def model_from_bytes(data: bytes) -> CFModel:
    """Inverse of ``model_to_bytes``; an unknown schema version raises ``SchemaError``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        path.write_bytes(data)
        return CFModel.load(path)


def latest_version(models_dir: str | Path) -> int | None:
    versions = _versions(models_dir)
    return max(versions) if versions else None


def load_latest(models_dir: str | Path) -> CFModel | None:
    """The highest published version, or None for an empty (or missing) folder."""
    version = latest_version(models_dir)
    return None if version is None else CFModel.load(model_path(models_dir, version))


def _versions(models_dir: str | Path) -> list[int]:
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    return [int(m.group(1)) for p in folder.iterdir() if (m := _NAME.match(p.name))]


class ModelWatcher:
    """Poll a models folder (or one model file) and hand each new version to a callback.

    Parameters
    ----------
    path : str or Path
        A models folder (``cf-<version>.npz`` files) or a single model file, reloaded when its
        version changes.
    on_new_model : callable
        Called with the new ``CFModel``, from the polling thread (or from ``poll``'s caller).
    interval_s : float
        Seconds between polls of the background thread.
    on_error : callable, optional
        Called with the exception when a load or ``on_new_model`` fails (the watcher keeps
        the old model and retries at the next poll); default: ignore.

    Examples
    --------
    >>> watcher = ModelWatcher(tmp_dir, lambda m: warm_start(engine, m))  # doctest: +SKIP
    >>> watcher.start(); ...; watcher.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        on_new_model: Callable[[CFModel], None],
        *,
        interval_s: float = 5.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.path = Path(path)
        self.on_new_model = on_new_model
        self.interval_s = interval_s
        self.on_error = on_error
        self.version: int | None = None
        self._mtime: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> CFModel | None:
        """Load and hand over a new version if there is one; returns it (None if none)."""
        try:
            model = self._load_if_new()
            if model is not None:
                self.on_new_model(model)
        except Exception as exc:  # a bad file or a failed install must not kill a worker
            if self.on_error is not None:
                self.on_error(exc)
            return None
        if model is not None:
            self.version = model.version
        return model

    def _load_if_new(self) -> CFModel | None:
        if self.path.is_dir():
            version = latest_version(self.path)
            if version is None or version == self.version:
                return None
            return CFModel.load(model_path(self.path, version))
        if not self.path.exists():
            return None
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return None
        model = CFModel.load(self.path)
        self._mtime = mtime
        return None if model.version == self.version else model

    def start(self) -> ModelWatcher:
        """Poll in a daemon thread until ``stop``; the first poll happens at once."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="attune-model-watcher", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval_s)
