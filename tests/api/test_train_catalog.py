"""``attune train --catalog`` (or the settings' catalog) trains on the catalog the service
serves; the model records it, and a service on another catalog refuses the model."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bandit import Catalog
from collab import publish
from tests.api.conftest import decide, wait_until
from tests.api.test_models import USERS, _model_version, _run_train, _traffic, _train


def acme_catalog(path: Path) -> Path:
    """The shipped catalog with its own name and tone levels: no strategy id in common."""
    text = resources.files("bandit").joinpath("catalogs/default.toml").read_text("utf-8")
    text = text.replace(
        'name = "attune-default"\nversion = 2', 'name = "acme-support"\nversion = 1'
    )
    for old, new in (("warm", "friendly"), ("neutral", "plain"), ("direct", "blunt")):
        text = text.replace(f"[dimensions.tone.levels.{old}]", f"[dimensions.tone.levels.{new}]")
    text = text.replace('tone = "direct"', 'tone = "blunt"')
    path.write_text(text, encoding="utf-8")
    return path


def test_train_reads_the_log_with_the_catalog_it_was_made_with(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    catalog = acme_catalog(tmp_path / "acme.toml")
    data = tmp_path / "data"
    client = make_client(data, catalog=catalog, poll_interval_s=0.2)
    assert decide(client, "probe")["policy"]["version"] == "acme-support.v1"
    _traffic(client, range(USERS))

    # The shipped catalog has none of these strategies: train says so, naming the catalog.
    wrong = _run_train(data)
    assert wrong.returncode == 2, wrong.stderr
    assert "name a strategy that catalog 'attune-default' v2" in wrong.stderr
    assert re.search(
        r"(\d+) of \1 logged decisions .* \(e\.g\. '\w+\.(friendly|plain|blunt)\.", wrong.stderr
    )
    assert "--catalog" in wrong.stderr

    model = _train(data, "--catalog", str(catalog))
    assert model.catalog == Catalog.from_toml(catalog).identity()
    assert len(model.arm_ids) == 128 and any(".friendly." in a for a in model.arm_ids)
    # The service on that catalog installs it without a restart.
    assert wait_until(lambda: _model_version(client) == model.version, timeout=20)

    # The settings file of attune serve names the catalog just as well (a relative path is
    # relative to the settings file).
    settings = tmp_path / "settings.toml"
    settings.write_text('[server]\ncatalog = "acme.toml"\n', encoding="utf-8")
    again = _train(data, "--settings", str(settings))
    assert again.catalog == model.catalog and again.version > model.version


def test_a_service_on_another_catalog_refuses_the_model(
    make_client: Callable[..., TestClient], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = acme_catalog(tmp_path / "acme.toml")
    acme = make_client(tmp_path / "acme", catalog=catalog)
    _traffic(acme, range(USERS))
    model = _train(tmp_path / "acme", "--catalog", str(catalog))

    shipped = make_client(tmp_path / "shipped", poll_interval_s=0.2)
    with caplog.at_level(logging.ERROR, logger="streaming.sqlite.backend"):
        publish(model, tmp_path / "shipped" / "models")

        def refused() -> list[str]:
            return [
                r.getMessage() for r in caplog.records if "refused a CF model" in r.getMessage()
            ]

        assert wait_until(lambda: bool(refused()), timeout=20)
    [message] = refused()[:1]
    assert f"CF model v{model.version} was trained on catalog 'acme-support' v1" in message
    assert "not on catalog 'attune-default' v2" in message
    assert _model_version(shipped) == 0.0  # still serving without a model
    assert decide(shipped, "u0")["directives"]["adapter"] is None
