"""Every subcommand module loads: the CLI shows a failed import as "(unavailable)", which
would otherwise hide a broken command."""

from __future__ import annotations

import importlib

import pytest

from api.cli import COMMANDS, build_parser, main


@pytest.mark.parametrize("name", COMMANDS)
def test_command_module_loads(name: str) -> None:
    module = importlib.import_module(f"api.commands.{name}")
    assert callable(module.add_parser) and callable(module.run)


def test_no_command_is_unavailable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "(unavailable)" not in out
    for name in COMMANDS:
        assert name.replace("_", "-") in out


def test_cli_errors_are_one_line_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--scenario", "no-such-scenario", "--out", "/tmp/attune-x"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("attune simulate: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
