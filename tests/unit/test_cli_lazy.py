"""The command line loads a subcommand only when it runs, so `indical master` starts fast."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import click
import numpy as np

import indical.commands
from indical.cli import _COMMANDS, main
from indical.testing.frames import write_synthetic


def test_every_command_module_is_listed_and_loads():
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    modules = {m.name for m in pkgutil.iter_modules(indical.commands.__path__)}
    listed = {target.split(":")[0].rsplit(".", 1)[1] for target in _COMMANDS.values()}
    helpers = {"progress", "library_target", "scheduler"}  # shared by commands, not commands themselves
    assert modules - helpers == listed
    assert main.get_command(ctx, "no-such-command") is None


def _loaded_packages(args: list[str]) -> set[str]:
    code = ("import sys, atexit\n"
            "atexit.register(lambda: print('LOADED', *sorted({m.split('.')[0] for m in sys.modules})))\n"
            "from indical.cli import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LOADED"))
    return set(line.split()[1:])


def test_building_a_master_does_not_import_astropy(tmp_path):
    from indical.frame import FrameType
    paths = [write_synthetic(tmp_path / f"d{i}.fits", FrameType.DARK, level_adu=500.0, seed=i,
                             shape=(40, 60))
             for i in range(5)]
    loaded = _loaded_packages(["master", *map(str, paths), "-o", str(tmp_path / "m.fits")])
    assert "astropy" not in loaded and "PyIndi" not in loaded
    from astropy.io import fits
    with fits.open(tmp_path / "m.fits") as hdul:
        hdul.verify("exception")
        assert hdul[0].header["IMAGETYP"] == "Master Dark" and hdul[0].header["NCOMBINE"] == 5
        assert np.isfinite(hdul[0].data).all()
