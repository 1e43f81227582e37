"""The layers are import-linter contracts in pyproject.toml ([tool.importlinter]). This runs
`lint-imports` as a user does, from the repository's root in the virtual environment, on
indical's import graph (imports inside functions and TYPE_CHECKING blocks included), and shows
that each contract catches what it forbids, planted in a copy of the checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"   # the venv's command


def contract_names() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return [c["name"] for c in config["contracts"]]


def checkout_copy(dest: Path) -> Path:
    """The package's folders and pyproject.toml as they are in the checkout: indical/ with its
    links to drivers/, simulators/, sequences/ and examples/ (decision 018)."""
    mapping = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    for folder in sorted(set(mapping.values())):
        shutil.copytree(ROOT / folder, dest / folder, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy2(PYPROJECT, dest / "pyproject.toml")
    return dest


def lint(tree: Path) -> tuple[int, dict[str, str], str]:
    """`lint-imports` run in `tree` as a user runs it in the checkout: exit status, each
    contract's KEPT or BROKEN, and the report."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(LINT_IMPORTS)], cwd=tree, env=env, capture_output=True,
                         text=True, timeout=120)
    report = run.stdout + run.stderr
    verdicts = {}
    for name in contract_names():
        found = re.search(re.escape(name) + r"\s*(KEPT|BROKEN)", report)
        verdicts[name] = found.group(1) if found else "missing"
    return run.returncode, verdicts, report


def test_the_import_contracts_hold():
    """Plain `lint-imports` in the checkout, every module of the installed package seen."""
    status, verdicts, report = lint(ROOT)
    assert len(verdicts) >= 4
    assert status == 0 and set(verdicts.values()) == {"KEPT"}, report
    analysed = int(re.search(r"Analyzed (\d+) files", report).group(1))
    modules = {p for folder in ("indical", "drivers", "simulators", "sequences", "examples")
               for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts}
    assert analysed == len(modules) > 150, report


def _plant(tree: Path, module: str, code: str) -> None:
    path = tree.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert path.is_file(), path
    with path.open("a") as fh:
        fh.write("\n\n" + code + "\n")


LAZY = "def _planted():\n    import {}\n"

PLANTED = [
    # the core learns of a simulator, inside a function
    ("Layers", "indical.calib.apply", LAZY.format("indical.simulators.devices")),
    # a driver leans on a simulator
    ("Drivers and simulators", "indical.drivers.gpio", LAZY.format("indical.simulators.world")),
    # a shipped sequence reaches past the public API
    ("Shipped sequences", "indical.shipped_sequences.panel_flats",
     "from indical.sequence.panel import take_flats\n"),
    # a cycle hidden by an import inside a function
    ("No import cycles", "indical.sequence.session", LAZY.format("indical.sequence.observatory")),
    # a cycle through a TYPE_CHECKING block
    ("No import cycles", "indical.fits.keywords",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import indical.fits.io\n"),
]


@pytest.mark.parametrize("contract, module, code", PLANTED,
                         ids=[f"{c}: {m}" for c, m, _ in PLANTED])
def test_each_contract_catches_what_it_forbids(tmp_path, contract, module, code):
    tree = checkout_copy(tmp_path)
    _plant(tree, module, code)
    status, verdicts, report = lint(tree)
    broken = [name for name, verdict in verdicts.items() if verdict == "BROKEN"]
    assert status != 0 and len(broken) == 1 and broken[0].startswith(contract), report
    assert module.rsplit(".", 1)[1] in report, report   # the report names the module
