"""The house rule `make lint` holds the code to (pyproject.toml [tool.importlinter]): four
floors importing only downward, Dagster's groups apart, no import circle. A deliberate
breach, in a copy of the code, must fail it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOORS = ("models", "senders", "assets", "pipelines")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def house(tmp_path: Path) -> Path:
    """A copy of the code's four floors and the contracts."""
    for floor in FLOORS:
        shutil.copytree(
            ROOT / floor, tmp_path / floor, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(house: Path, module: str, line: str) -> None:
    path = house / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_code_keeps_the_house_rule(house):
    result = lint_imports(house)
    assert result.returncode == 0, result.stdout
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the domain reaching up into the shell
        ("models.landing", "import pipelines.cli", "Four floors"),
        # a way out reaching into Dagster's assets, from inside a function
        ("senders.outbox", "def _up():\n    import assets.shared.warehouse", "Four floors"),
        # one Dagster group using another's insides
        ("assets.results.report", "import assets.sends.checks", "Dagster groups"),
        # two modules of one floor importing each other
        ("models.landing", "import models.settings", "No import circle"),
    ],
)
def test_a_breach_fails_the_lint(house, module, line, broken):
    add_import(house, module, line)
    result = lint_imports(house)
    assert result.returncode != 0
    verdicts = {
        row.rsplit(" ", 1)[0]: row.rsplit(" ", 1)[1]
        for row in result.stdout.splitlines()
        if row.endswith((" KEPT", " BROKEN"))
    }
    assert [v for name, v in verdicts.items() if name.startswith(broken)] == ["BROKEN"]
