"""The layers are import-linter contracts in pyproject.toml ([tool.importlinter]). This runs them
on indical's import graph as a wheel installs it, imports inside functions and TYPE_CHECKING
blocks included, and shows that each contract catches what it forbids."""

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
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))")


def contract_names() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return [c["name"] for c in config["contracts"]]


def installed_layout(dest: Path) -> Path:
    """The package as a wheel installs it: drivers/, simulators/ and sequences/ inside indical/
    (pyproject's package-dir). The editable install maps those folders with an import hook
    that import-linter's graph builder does not follow, so the contracts run on this copy."""
    mapping = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):  # parents before children
        shutil.copytree(ROOT / folder, dest.joinpath(*package.split(".")), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    return dest


def lint(tree: Path) -> tuple[int, dict[str, str], str]:
    """lint-imports on `tree`: exit status, each contract's KEPT or BROKEN, and the report."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    run = subprocess.run([sys.executable, "-c", LINT, str(PYPROJECT)], cwd=tree, env=env,
                         capture_output=True, text=True, timeout=120)
    report = run.stdout + run.stderr
    verdicts = {}
    for name in contract_names():
        found = re.search(re.escape(name) + r"\s*(KEPT|BROKEN)", report)
        verdicts[name] = found.group(1) if found else "missing"
    return run.returncode, verdicts, report


def test_the_import_contracts_hold(tmp_path):
    status, verdicts, report = lint(installed_layout(tmp_path))
    assert len(verdicts) >= 4
    assert status == 0 and set(verdicts.values()) == {"KEPT"}, report


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
    tree = installed_layout(tmp_path)
    _plant(tree, module, code)
    status, verdicts, report = lint(tree)
    broken = [name for name, verdict in verdicts.items() if verdict == "BROKEN"]
    assert status != 0 and len(broken) == 1 and broken[0].startswith(contract), report
    assert module.rsplit(".", 1)[1] in report, report   # the report names the module
