"""A CF model records the catalog it was trained on; ``check_catalog`` refuses it on another."""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from bandit import Catalog
from collab import CatalogMismatch, CFModel, check_catalog
from tests.collab.conftest import World

DEFAULT = Catalog.default()
TEXT = resources.files("bandit").joinpath("catalogs/default.toml").read_text("utf-8")


def _variant(**changes: Any) -> Catalog:
    data = tomllib.loads(TEXT)
    data["catalog"].update(changes)
    return Catalog.from_dict(data)


def test_a_fitted_model_records_its_catalog_and_keeps_it_through_save(
    world: World, tmp_path: Path
) -> None:
    assert world.model.catalog == DEFAULT.identity()
    world.model.save(tmp_path / "m.npz")
    assert CFModel.load(tmp_path / "m.npz").catalog == DEFAULT.identity()
    check_catalog(world.model, DEFAULT)  # the catalog it was trained on: no error


def test_the_fingerprint_is_the_content_not_the_file(tmp_path: Path) -> None:
    reformatted = tmp_path / "same.toml"
    reformatted.write_text("# a comment\n\n" + TEXT.replace(" = ", "="), encoding="utf-8")
    assert Catalog.from_toml(reformatted).fingerprint == DEFAULT.fingerprint
    edited = tmp_path / "edited.toml"
    edited.write_text(TEXT.replace("Keep a neutral, professional tone.", "Stay neutral."))
    assert Catalog.from_toml(edited).fingerprint != DEFAULT.fingerprint


def _edited_text() -> Catalog:
    data = tomllib.loads(TEXT)
    data["dimensions"]["tone"]["levels"]["neutral"]["text"]["en"] = "Stay neutral."
    return Catalog.from_dict(data)


@pytest.mark.parametrize(
    "catalog,pattern",
    [
        (
            _variant(name="acme-support"),
            r"trained on catalog 'attune-default' v2 \(sha256 [0-9a-f]{12}\), not on catalog "
            r"'acme-support' v2 .*attune train --catalog",
        ),
        (_variant(version=3), r"catalog 'attune-default' v2 .* not on catalog 'attune-default' v3"),
        (_edited_text(), r"'attune-default' v2 \(sha256 (\w+)\), not on .*v2 \(sha256 (?!\1)"),
    ],
)
def test_a_model_on_another_catalog_is_refused_naming_both(
    world: World, catalog: Catalog, pattern: str
) -> None:
    with pytest.raises(CatalogMismatch, match=pattern):
        check_catalog(world.model, catalog)


def test_a_model_that_recorded_no_catalog_must_have_its_strategies(world: World) -> None:
    legacy = dataclasses.replace(world.model, meta={k: v for k, v in world.model.meta.items()})
    legacy.meta.pop("catalog")
    check_catalog(legacy, DEFAULT)  # same strategies: accepted
    fewer = dataclasses.replace(
        legacy,
        arm_ids=legacy.arm_ids[1:],
        arm_factors=legacy.arm_factors[1:],
        cluster_rewards=legacy.cluster_rewards[:, 1:],
    )
    with pytest.raises(CatalogMismatch, match=r"a catalog it did not record \(127 strategies\)"):
        check_catalog(fewer, DEFAULT)
