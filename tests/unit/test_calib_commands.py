"""`indical calibrate`, `indical needs` and `indical report` from the command line."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from calib_fixtures import standard_library, write_light
from indical.cli import main


def test_calibrate_command_end_to_end(tmp_path):
    lib, scene, _ = standard_library(tmp_path / "lib")
    lib.close()
    rng = np.random.default_rng(1)
    write_light(tmp_path / "n", "a.fits", scene, rng)
    write_light(tmp_path / "n", "ha.fits", scene, rng, filter="Ha", exposure_s=60.0)
    db = str(tmp_path / "lib" / "library.sqlite")
    run = CliRunner().invoke(main, ["calibrate", str(tmp_path / "n"), "-o", str(tmp_path / "out"),
                                    "--library", db])
    assert run.exit_code == 1, run.output
    assert "calibrated" in run.output and (tmp_path / "out" / "a_cal.fits").is_file()
    assert "no_masters" in run.output and "no matching dark 60 s" in run.output
    assert "1 calibrated, 1 without masters, 0 failed" in run.output
    again = CliRunner().invoke(main, ["calibrate", str(tmp_path / "n" / "a.fits"), "-o",
                                      str(tmp_path / "out"), "--library", db])
    assert again.exit_code == 0 and "1 already calibrated" in again.output
    redo = CliRunner().invoke(main, ["calibrate", "--library", db])
    # the one without masters is retried
    assert "1 light(s) marked for recalibration, 0 in the library not calibrated" in redo.output


def test_calibrate_without_paths_does_lights_indexed_but_never_calibrated(tmp_path):
    from indical.calib.ingest import inspect_file
    from indical.calib.library import CalibrationLibrary
    from indical.frame import FrameType
    lib, scene, _ = standard_library(tmp_path / "lib")
    lib.add_frame(inspect_file(write_light(tmp_path / "n", "ingested.fits", scene,
                                           np.random.default_rng(3))))
    lib.close()
    db = str(tmp_path / "lib" / "library.sqlite")
    run = CliRunner().invoke(main, ["calibrate", "--library", db])
    assert "0 light(s) marked for recalibration, 1 in the library not calibrated yet" in run.output
    assert (tmp_path / "n" / "calibrated" / "ingested_cal.fits").is_file()
    again = CliRunner().invoke(main, ["calibrate", "--library", db])
    assert "nothing to do" in again.output
    with CalibrationLibrary(db) as lib:   # the output was not indexed as another light
        assert len(lib.frames(frame_type=FrameType.LIGHT)) == 1


def test_calibrate_without_library_says_so(tmp_path):
    run = CliRunner().invoke(main, ["calibrate", str(tmp_path), "--library",
                                    str(tmp_path / "missing.sqlite")])
    assert run.exit_code == 2
    assert "missing.sqlite: no calibration library there" in run.output


@pytest.mark.parametrize("command", [["library", "--library", "{db}", "ls"],
                                     ["needs", "--library", "{db}"],
                                     ["report", "-o", "{out}", "--library", "{db}"]])
def test_reading_a_library_that_is_not_there_says_so_and_creates_nothing(tmp_path, command):
    """A mistyped --library on a command that only reads is refused with the path; `library
    ls` used to create an empty library there and list nothing, as if it were empty."""
    db = tmp_path / "mistyped.sqlite"
    args = [a.format(db=db, out=tmp_path / "report") for a in command]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 2, run.output
    assert "mistyped.sqlite: no calibration library there" in run.output
    assert not db.exists()


def test_calibrate_an_empty_folder_says_so(tmp_path):
    lib, _, _ = standard_library(tmp_path / "lib")
    lib.close()
    (tmp_path / "empty").mkdir()
    run = CliRunner().invoke(main, ["calibrate", str(tmp_path / "empty"), "--library",
                                    str(tmp_path / "lib" / "library.sqlite")])
    assert run.exit_code == 1 and "no FITS files in" in run.output
