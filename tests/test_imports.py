"""The dependency direction of DESIGN.md, enforced on the source: bandit imports nothing of
ours; collab may import bandit; streaming bandit and collab; simulations bandit, collab and
streaming; api anything. Nothing imports api."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bandit", "collab", "streaming", "simulations", "api")
ALLOWED = {
    "bandit": set(),
    "collab": {"bandit"},
    "streaming": {"bandit", "collab"},
    "simulations": {"bandit", "collab", "streaming"},
    "api": {"bandit", "collab", "streaming", "simulations"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES}
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_import_direction(package: str) -> None:
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_packages(path) - ALLOWED[package] - {package}
        if wrong:
            bad[str(path.relative_to(ROOT))] = sorted(wrong)
    assert not bad, (
        f"{package} may import only {sorted(ALLOWED[package]) or 'nothing of ours'}: {bad}"
    )


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("import numpy\nfrom api.app import create_app\nimport streaming.bus\n")
    assert imported_packages(f) == {"api", "streaming"}
