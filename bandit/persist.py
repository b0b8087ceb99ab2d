"""An engine as one ``.npz`` file: no pickle, a schema version, written atomically.

The file holds the user state (``users.*`` arrays), the arm features ``X``, the shared model
(``shared.*``: every tenant's posterior and contributions), the decision seeds drawn but not
yet handed out, and a JSON ``meta`` record: schema version, catalog, policy and its parameters,
the other hyperparameters (``config``), pins, remembered user features, the seed of the
normal-draw pool and the Generator's state. A
loaded engine makes the same decisions, seeds included, as the one saved. Loading a file of
another schema version raises ``SchemaError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from bandit.catalog import Catalog
from bandit.config import EngineConfig
from bandit.state import SchemaError, UserState, save_npz

if TYPE_CHECKING:
    from bandit.engine import Engine

ENGINE_SCHEMA_VERSION = 2
E = TypeVar("E", bound="Engine")


def save_engine(engine: Engine, path: str | Path) -> None:
    """``Engine.save``."""
    with engine.lock:
        arrays = {f"users.{k}": v for k, v in engine.users.to_arrays().items()}
        meta = {
            "schema_version": ENGINE_SCHEMA_VERSION,
            "catalog": engine.catalog.raw,
            "policy": engine.policy.name,
            "policy_params": engine.policy.params,
            "config": _saved_config(engine.config),
            "pins": engine.pins,
            "user_features": engine.user_features,
            "pool_seed": engine._pool_seed,
            "rng": engine.rng.bit_generator.state,
        }
        arrays.update({f"shared.{k}": v for k, v in engine.shared.to_arrays().items()})
        arrays["seed_buffer"] = engine._seeds.pending()
        arrays.update({"X": engine.X, "meta": np.array(json.dumps(meta))})
        save_npz(path, arrays)


def load_engine(cls: type[E], path: str | Path) -> E:
    """``Engine.load``: an engine of class ``cls`` from a file ``save_engine`` wrote."""
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["meta"]))
    if meta.get("schema_version") != ENGINE_SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: engine schema version {meta.get('schema_version')} is not supported "
            f"(this attune reads version {ENGINE_SCHEMA_VERSION})"
        )
    catalog = Catalog.from_dict(meta["catalog"], source=f"{path}:catalog")
    engine = cls(catalog, _loaded_config(meta))
    _restore(engine, arrays, meta)
    return engine


def _restore(engine: Engine, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Put a file's state into a fresh engine of the file's catalog and config."""
    engine.shared.from_arrays(_prefixed(arrays, "shared."))
    engine.users = UserState.from_arrays(
        _prefixed(arrays, "users."), new_user=engine.shared.user_prior
    )
    engine.X[:] = arrays["X"]
    engine._XT = np.ascontiguousarray(engine.X.T)
    engine.pins = meta["pins"]
    engine.user_features = meta["user_features"]
    engine._set_pool(meta["pool_seed"])
    engine.rng.bit_generator.state = meta["rng"]
    engine._seeds.restore(arrays["seed_buffer"])


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


def _saved_config(config: EngineConfig) -> dict[str, Any]:
    """``meta["config"]``: the fields but the policy's, which are saved beside it."""
    out = config.to_dict()
    del out["policy"], out["policy_params"]
    return out


def _loaded_config(meta: dict[str, Any]) -> EngineConfig:
    return EngineConfig.from_dict(
        {**meta["config"], "policy": meta["policy"], "policy_params": meta["policy_params"]}
    )
