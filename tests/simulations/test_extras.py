"""The ``sim`` extra (matplotlib, tqdm) is optional: ``simulations`` imports without it, and
what needs it stops with one line naming the extra and the pip command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from api.cli import main
from simulations import simulate, write_report

INSTALL = "(pip install 'attune-engine[sim]')"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``hide("matplotlib")``: importing it or any submodule fails until the test ends."""

    def _hide(*names: str) -> None:
        for name in names:
            for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
                monkeypatch.delitem(sys.modules, loaded)
            monkeypatch.setitem(sys.modules, name, None)

    return _hide


def test_simulate_without_matplotlib_names_the_extra(hide, tmp_path, capsys) -> None:
    hide("matplotlib")
    out = tmp_path / "sim"
    argv = ["simulate", "--out", str(out), "--users", "5", "--rounds", "1", "--no-progress"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "attune simulate: error: matplotlib is not installed: it comes with attune's 'sim' "
        f"extra {INSTALL}\n"
    )
    assert not out.exists()  # it stopped before simulating


def test_simulate_progress_bar_without_tqdm_names_the_extra(hide, tmp_path, capsys) -> None:
    hide("tqdm")
    assert main(["simulate", "--out", str(tmp_path / "sim"), "--users", "5"]) == 2
    assert capsys.readouterr().err == (
        "attune simulate: error: tqdm is not installed: it comes with attune's 'sim' extra "
        f"{INSTALL}, or pass --no-progress\n"
    )


def test_train_progress_bar_without_tqdm_names_the_extra(hide, tmp_path, capsys) -> None:
    hide("tqdm")
    assert main(["train", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "attune train: error: tqdm is not installed: it comes with attune's 'sim' extra "
        f"{INSTALL}, or pass --no-progress\n"
    )


def test_train_without_progress_needs_no_tqdm(hide, tmp_path, capsys) -> None:
    hide("tqdm")
    assert main(["train", "--data-dir", str(tmp_path), "--no-progress"]) == 2
    # past the bar: the next thing missing is the data
    assert "no embedded store" in capsys.readouterr().err


def test_library_calls_raise_import_error_naming_the_extra(hide, tmp_path) -> None:
    result = simulate("default", policies=["uniform"], users=5, rounds=1)
    hide("matplotlib", "tqdm")
    with pytest.raises(ImportError, match=r"matplotlib is not installed: .*'sim' extra"):
        write_report(result, tmp_path)
    with pytest.raises(ImportError, match=r"tqdm is not installed: .*'sim' extra"):
        simulate("default", policies=["uniform"], users=5, rounds=1, progress=True)
    simulate("default", policies=["uniform"], users=5, rounds=1)  # no bar, no tqdm needed


def test_simulations_and_the_cli_import_without_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = sys.modules['tqdm'] = None\n"
        "import simulations\n"
        "from api.cli import build_parser\n"
        "print(build_parser().format_help())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "simulate" in done.stdout and "(unavailable)" not in done.stdout
