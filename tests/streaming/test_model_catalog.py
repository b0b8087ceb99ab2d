"""Installs refuse a CF model trained on another catalog: a worker skips it (and says so once),
a restored partition does not re-attach it."""

from __future__ import annotations

import logging
import tomllib
from importlib import resources

import pytest

from bandit import Catalog, Engine
from collab import CatalogMismatch, CFModel
from streaming.composer import RewardComposer
from streaming.models import ModelProcessor, install_pending_model
from tests.collab.conftest import World, world  # noqa: F401  (the shared fitted community)


def _acme() -> Catalog:
    data = tomllib.loads(resources.files("bandit").joinpath("catalogs/default.toml").read_text())
    data["catalog"]["name"] = "acme-support"
    return Catalog.from_dict(data, source="acme.toml")


class _Source:
    def __init__(self, model: CFModel) -> None:
        self.model = model

    def latest(self) -> CFModel | None:
        return self.model

    def get(self, version: int) -> CFModel | None:
        return self.model if version == self.model.version else None


def test_install_raises_naming_both_catalogs(world: World) -> None:  # noqa: F811
    processor = ModelProcessor(Engine(_acme(), random_state=0), RewardComposer())
    with pytest.raises(CatalogMismatch, match=r"'attune-default' v2 .* not on catalog 'acme-sup"):
        processor.install(world.model)
    assert processor.installed is None


def test_a_worker_skips_a_refused_version_and_logs_it_once(
    world: World,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = _Source(world.model)
    processor = ModelProcessor(Engine(_acme(), random_state=0), RewardComposer(), source=source)
    with caplog.at_level(logging.ERROR, logger="streaming.models"):
        assert install_pending_model(processor, 0, 10) == set()
        assert install_pending_model(processor, 0, 20) == set()
    assert processor.installed is None
    refusals = [r for r in caplog.records if "not on catalog 'acme-support'" in r.getMessage()]
    assert len(refusals) == 1
    # the same worker on the model's own catalog installs it
    ok = ModelProcessor(Engine(random_state=0), RewardComposer(), source=source)
    install_pending_model(ok, 0, 10)
    assert ok.installed is not None and ok.installed.version == world.model.version


def test_a_restored_partition_does_not_reattach_a_model_of_another_catalog(
    world: World,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = _Source(world.model)
    before = ModelProcessor(Engine(random_state=0), RewardComposer(), source=source)
    before.install(world.model, offset=5)
    record = before.export_shared(0)
    after = ModelProcessor(Engine(_acme(), random_state=0), RewardComposer(), source=source)
    with caplog.at_level(logging.ERROR, logger="streaming.models"):
        after.import_shared(0, record)
    assert after.installed is None
    assert any("partition 0: CF model" in r.getMessage() for r in caplog.records)
