"""The command line: demo writes FITS, rig check reports roles, errors are one clear line."""

from __future__ import annotations

from click.testing import CliRunner

from indical.cli import main
from indical.fits.io import read_frame


def test_rig_check_on_the_builtin_observatory():
    result = CliRunner().invoke(main, ["rig", "check"])
    assert result.exit_code == 0, result.output
    for role in ("camera", "panel", "cover", "filter_wheel"):
        assert role in result.output
    assert "all roles reachable" in result.output


def test_rig_check_bad_file_names_the_key(tmp_path):
    rig = tmp_path / "r.toml"
    rig.write_text('[camera]\ndriver = "sim"\nread_noise_e = "lots"\n')
    result = CliRunner().invoke(main, ["rig", "check", str(rig)])
    assert result.exit_code == 2
    assert "[camera] read_noise_e: expected a number" in result.output
    assert "Traceback" not in result.output


def test_rig_check_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["rig", "check", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "none.toml: file: no such rig file" in result.output


def test_every_command_is_listed_with_a_whole_summary():
    """`indical --help` (and each group's) lists every command with a summary that is not cut."""
    for group in ([], ["library"], ["rig"]):
        result = CliRunner().invoke(main, [*group, "--help"], terminal_width=80)
        assert result.exit_code == 0, result.output
        listing = result.output.split("Commands:")[1].strip().splitlines()
        assert listing and all(not line.rstrip().endswith("...") for line in listing), listing
