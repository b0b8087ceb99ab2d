"""``attune keys``: keys added and revoked while the service runs take effect without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.cli import main
from api.keys import KeyRing, KeyStore
from tests.api.conftest import service_of


def keys(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, str, str]:
    code = main(["keys", *args, "--data-dir", str(data)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_list_revoke_reach_a_running_service(
    make_client: Callable[..., TestClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    client = make_client(data)
    ring = service_of(client).keys
    ring.min_reload_s, ring.refresh_s = 0.0, 0.2
    code, key, err = keys(capsys, data, "create", "--tenant", "gamma")
    key = key.strip()
    assert code == 0 and len(key) >= 24 and "shown only now" in err
    auth = {"Authorization": f"Bearer {key}"}
    r = client.post("/v1/decisions", json={"user_id": "zoe"}, headers=auth)
    assert r.status_code == 200  # no restart
    assert client.get("/v1/users/zoe/profile", headers=auth).status_code == 200
    code, listing, _ = keys(capsys, data, "list", "--tenant", "gamma")
    [line] = listing.splitlines()
    key_id = line.split()[0]
    assert code == 0 and "gamma" in line and key not in listing
    assert keys(capsys, data, "revoke", "--tenant", "gamma", "--id", key_id)[0] == 0
    time.sleep(0.3)
    assert client.post("/v1/decisions", json={"user_id": "zoe"}, headers=auth).status_code == 403
    assert client.get("/v1/users/zoe/profile", headers=auth).status_code == 403


def test_operator_keys_open_metrics_and_nothing_else(
    make_client: Callable[..., TestClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    client = make_client(data)
    service_of(client).keys.min_reload_s = 0.0
    code, key, _ = keys(capsys, data, "create", "--operator")
    assert code == 0
    auth = {"Authorization": f"Bearer {key.strip()}"}
    assert client.get("/metrics", headers=auth).status_code == 200
    assert client.post("/v1/decisions", json={"user_id": "a"}, headers=auth).status_code == 403


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create",), "give --tenant NAME or --operator"),
        (("create", "--tenant", "no/slash"), "names must match"),
        (("revoke", "--tenant", "acme"), "give --id"),
        (("revoke", "--tenant", "acme", "--id", "zz"), "at least 6 hex digits"),
        (("revoke", "--tenant", "acme", "--id", "abcdef"), "no key 'abcdef'"),
    ],
)
def test_bad_key_commands_say_why(
    make_client: Callable[..., TestClient],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    make_client(tmp_path / "data")
    code, _, err = keys(capsys, tmp_path / "data", *args)
    assert code == 2 and message in err


def test_short_keys_are_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.sqlite")
    with pytest.raises(ValueError, match=">= 24 characters"):
        store.add("acme", "twenty-three-characters")
    store.add("acme", "twenty-four-characters-x")
    assert KeyRing(store=store).tenant_of("twenty-four-characters-x") == "acme"
    store.close()
