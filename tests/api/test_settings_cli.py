"""Settings precedence and errors; the CLI's one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.cli import COMMANDS, main
from api.settings import SettingsError, load_settings

FILE = """
[server]
port = 9000
data_dir = "d"
[engine]
policy = "linucb"
[feedback]
wait_window_s = 60
default_reward = 0.2
[rewards]
thumbs_down = 0.1
[tenants.acme]
keys = ["file-key-0123456789abcdef"]
"""


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "attune.toml"
    path.write_text(FILE)
    s = load_settings(path, env={})
    assert (s.port, s.engine.policy, s.wait_window_s, s.default_reward) == (
        9000,
        "linucb",
        60,
        0.2,
    )
    assert s.rewards.thumbs_down == 0.1 and s.api_keys == {"file-key-0123456789abcdef": "acme"}
    env = {
        "ATTUNE_PORT": "9100",
        "ATTUNE_DATA_DIR": "/x",
        "ATTUNE_API_KEYS": "beta:env-key-0123456789abcdefg, gamma:env2-key-0123456789abcdef",
    }
    s = load_settings(path, env=env, port=9200)
    assert s.port == 9200 and s.data_dir == Path("/x")
    assert s.api_keys == {
        "file-key-0123456789abcdef": "acme",
        "env-key-0123456789abcdefg": "beta",
        "env2-key-0123456789abcdef": "gamma",
    }
    assert load_settings(env={"ATTUNE_SETTINGS": str(path)}).port == 9000


BAD = [
    ("[server]\nport = 0\n", "port"),
    ("[server]\ncolour = 1\n", "server.colour"),
    ("[gui]\nx = 1\n", "unknown section"),
    ("[rewards]\nthumbs_up = 3\n", "thumbs_up"),
    ("[tenants.acme]\nkeys = 'k'\n", "tenants.acme.keys"),
    ("[tenants.acme]\nkeys = ['short']\n", ">= 24 characters"),
    ("[tenants.acme]\nkeys = ['twenty-three-characters']\n", ">= 24 characters"),
    ("[operators]\nkeys = ['short-operator-key']\n", "operator keys must have >= 24"),
    ("[operators]\nkeys = 'k'\n", "operators.keys"),
    ("[retention]\ndecisions_s = -1\n", "retention.decisions_s"),
    ("[retention]\nforever = 1\n", "retention.forever"),
    ("[memory]\nmax_resident_users = 0\n", "max_resident_users"),
    ("not toml ===", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_settings_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings(path, env={})


def test_bad_environment_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="ATTUNE_PORT"):
        load_settings(env={"ATTUNE_PORT": "eighty"})
    with pytest.raises(SettingsError, match="ATTUNE_API_KEYS"):
        load_settings(env={"ATTUNE_API_KEYS": "no-colon"})


def test_cli_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert "serve" in COMMANDS
    assert main(["serve", "--settings", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such settings file" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
