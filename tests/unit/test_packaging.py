"""Packaging rules: what pyproject.toml lists and what a wheel carries. (The layers are
import-linter contracts: test_import_contracts.py.)"""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPING = {"indical": "indical", "indical.drivers": "drivers", "indical.simulators": "simulators",
           "indical.shipped_sequences": "sequences", "indical.examples": "examples"}


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_and_namespaced():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for prefix, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((prefix, *rel)))
    assert found == listed, f"add to pyproject packages: {sorted(found - listed)}; " \
                            f"remove: {sorted(listed - found)}"
    assert all(p.startswith("indical") for p in listed)


def test_drivers_are_found_through_the_entry_point_group():
    points = {ep.name: ep.value for ep in entry_points(group="indical.drivers")}
    assert points["sim"] == "indical.simulators.devices:SimDriver"
    assert points["gpio"] == "indical.drivers.gpio:GpioDriver"
    assert points["alnitak"] == "indical.drivers.alnitak:AlnitakDriver"
    assert points["indi"] == "indical.drivers.indi:IndiDriver"


KERNEL_SOURCES = {"indical/calib/combine/" + name
                  for name in ("module.c", "native.c", "native_avx2.c", "apply.c")}


def test_every_c_source_is_package_data_or_compiled_by_the_build():
    """C files compiled on the user's machine at first use must travel in the wheel; the
    kernels are compiled by the build (setup.py) instead, and are all it lists."""
    import fnmatch

    setuptools_cfg = _pyproject()["tool"]["setuptools"]
    data = setuptools_cfg["package-data"]
    mapping = setuptools_cfg["package-dir"]
    assert mapping == MAPPING
    missing = []
    for prefix, folder in MAPPING.items():
        for source in (ROOT / folder).rglob("*.c"):
            if str(source.relative_to(ROOT)) in KERNEL_SOURCES:
                continue
            rel = source.parent.relative_to(ROOT / folder).parts
            package = ".".join((prefix, *rel))
            if not any(fnmatch.fnmatch(source.name, pattern) for pattern in data.get(package, [])):
                missing.append(f"{source.relative_to(ROOT)} (package {package})")
    assert not missing, "not in package-data: " + ", ".join(missing)
    setup_py = (ROOT / "setup.py").read_text()
    assert all(name.rsplit("/", 1)[1] in setup_py for name in KERNEL_SOURCES)


@pytest.mark.system
def test_the_wheel_carries_the_compiled_kernel_and_what_the_readme_uses(tmp_path):
    """`pip wheel` on the checkout's files compiles the extension into the wheel; the
    installed package needs no compiler and no numba. It carries what the README uses: the
    shipped sequences, the example rigs and autopilot plan, the licence; the adapters under the indical
    namespace and nothing at the top level."""
    import shutil
    import subprocess
    import sys
    import zipfile

    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    src = tmp_path / "src"
    for name in listed:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp_path / "dist"), str(src)], capture_output=True, text=True,
                           timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("indical-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.startswith("indical/calib/combine/_native.") and n.endswith(".so")
               for n in names), names
    assert "indical/simulators/indi/loopback_bind.c" in names  # compiled at first use
    assert "numba" not in metadata.lower()
    wanted = {f"indical/examples/rigs/{p.name}" for p in (ROOT / "examples" / "rigs").glob("*.toml")}
    wanted |= {f"indical/examples/autopilot/{p.name}"
               for p in (ROOT / "examples" / "autopilot").iterdir() if p.suffix != ".py"}
    wanted |= {f"indical/shipped_sequences/{p.name}" for p in (ROOT / "sequences").glob("*.py")}
    wanted |= {"indical/drivers/gpio.py", "indical/simulators/devices.py", "indical/cli.py"}
    assert len(wanted) > 10 and not wanted - set(names), sorted(wanted - set(names))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "\nLicense-Expression: GPL-3.0-or-later\n" in metadata   # setuptools >= 77 (isolated)
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"indical"}


def test_the_checkout_links_each_mapped_folder_where_a_wheel_puts_it():
    """indical/drivers -> ../drivers and so on (decision 018): the checkout has the installed
    layout, so `lint-imports` (and anything else that walks indical/) sees every module."""
    for package, folder in MAPPING.items():
        if package == "indical":
            continue
        link = ROOT.joinpath(*package.split("."))
        assert link.is_symlink(), f"{link.relative_to(ROOT)}: not a link to {folder}/"
        assert link.readlink() == Path("..", folder)
        assert link.resolve() == (ROOT / folder).resolve()


def test_an_editable_install_without_build_isolation_reads_the_project(tmp_path):
    """`pip install -e . --no-build-isolation` builds with the environment's own setuptools
    (Debian 12's is 66, before SPDX licences in pyproject.toml): pip prepares the editable
    install's metadata with it, offline, and the licence is there."""
    import json
    import subprocess
    import sys

    import setuptools

    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
                          "--no-index", "--no-build-isolation", "--report", str(report),
                          "-e", str(ROOT)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"setuptools {setuptools.__version__}: " + run.stderr[-3000:]
    (item,) = json.loads(report.read_text())["install"]
    metadata = item["metadata"]
    assert metadata["name"] == "indical"
    assert metadata.get("license_expression", metadata.get("license")) == "GPL-3.0-or-later"


def test_shipped_sequences_are_installed_with_the_package():
    from importlib import resources

    from indical.sequence.shipped import shipped_sequence

    installed = {p.name for p in resources.files("indical.shipped_sequences").iterdir()
                 if p.name.endswith(".py") and p.name != "__init__.py"}
    in_checkout = {p.name for p in (ROOT / "sequences").glob("*.py") if p.name != "__init__.py"}
    assert installed == in_checkout and "panel_flats.py" in installed
    assert shipped_sequence("panel_flats.py").is_file()
