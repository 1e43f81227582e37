"""A header value never chooses where a file goes: FILTER = 'x/../../../../name' or 'R/G' gives
a master inside the output folder (and the library's masters folder), named safely."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from indical.cli import main
from indical.frame import FrameType
from indical.testing.frames import write_synthetic

EVIL = ["x/../../../../escaped", "R/G", "../..", ".hidden"]


def _flats(folder: Path, filters: list[str], n: int = 3) -> None:
    for f, name in enumerate(filters):
        for i in range(n):
            write_synthetic(folder / f"flat_{f}_{i}.fits", FrameType.FLAT,
                            level_adu=20000 + 300 * i, seed=10 * f + i, filter=name)


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_master_group_keeps_every_master_inside_out_dir(tmp_path):
    work = tmp_path / "a" / "b" / "c" / "d"
    raw = work / "raw"
    _flats(raw, EVIL)
    before = _files_under(tmp_path)
    out = work / "out"
    r = CliRunner().invoke(main, ["master", str(raw), "--group", "size,filter",
                                  "--out-dir", str(out), "--combine", "mean"])
    assert r.exit_code == 0, r.output
    new = _files_under(tmp_path) - before
    assert len(new) == len(EVIL)
    assert all(p.parent == out for p in new), sorted(map(str, new))
    assert all(not p.name.startswith(".") for p in new)


def test_library_ingest_keeps_masters_inside_the_masters_folder(tmp_path):
    work = tmp_path / "a" / "b" / "c" / "d"
    raw = work / "raw"
    _flats(raw, EVIL)
    db = work / "lib" / "library.sqlite"
    before = _files_under(tmp_path)
    r = CliRunner().invoke(main, ["library", "--library", str(db), "ingest", str(raw),
                                  "--min-frames", "3", "--combine", "mean"])
    assert r.exit_code == 0, r.output
    new = {p for p in _files_under(tmp_path) - before if p.suffix == ".fits"}
    assert len(new) == len(EVIL)
    assert all(p.parent == work / "lib" / "masters" for p in new), sorted(map(str, new))


def test_a_link_in_the_out_dir_is_not_followed(tmp_path):
    raw = tmp_path / "raw"
    _flats(raw, ["L"])
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "elsewhere.fits"
    r = CliRunner().invoke(main, ["master", str(raw), "--group", "size,filter",
                                  "--out-dir", str(out), "--combine", "mean"])
    assert r.exit_code == 0, r.output
    (built,) = out.iterdir()
    built.unlink()
    built.symlink_to(outside)
    r = CliRunner().invoke(main, ["master", str(raw), "--group", "size,filter",
                                  "--out-dir", str(out), "--combine", "mean", "--force"])
    assert r.exit_code != 0 and "outside" in r.output
    assert not outside.exists()


@pytest.mark.parametrize("name", EVIL)
def test_sequence_frames_named_from_a_filter_stay_in_their_night_folder(tmp_path, name):
    import numpy as np
    from indical.frame import Frame
    from indical.sinks import FitsFolderSink
    from indical.testing.frames import synthetic_meta
    sink = FitsFolderSink(tmp_path / "frames")
    meta = synthetic_meta(FrameType.FLAT, filter=name)
    path = sink.write(Frame(np.zeros((4, 4), np.uint16), meta))
    assert path.parent == sink.folder_for(Frame(np.zeros((4, 4), np.uint16), meta))
    assert not path.name.startswith(".")
