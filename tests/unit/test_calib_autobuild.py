"""Masters built by the library: at min_frames_for_master through the sink, by sweep for groups
missed, flats precalibrated from the library, supersession on rebuild; the library commands."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from astropy.io import fits
from click.testing import CliRunner

from indical.calib.autobuild import AutoBuilder, AutoBuildPolicy, due_groups, group_key_json
from indical.calib.config import CameraConfig
from indical.calib.grouping import ConfigKey
from indical.calib.library import CalibrationLibrary
from indical.calib.sink import LibrarySink
from indical.cli import main
from indical.frame import Binning, Frame, FrameType
from indical.testing.frames import synthetic_data, synthetic_meta, write_synthetic


def test_sink_builds_at_min_frames_and_flats_use_library_dark(library_target):
    with CalibrationLibrary(library_target) as lib:
        builder = AutoBuilder(lib, AutoBuildPolicy(min_frames_for_master=4))
        sink = LibrarySink(lib, on_indexed=builder)
        for i in range(4):
            sink.write(Frame(synthetic_data(700, seed=i),
                             synthetic_meta(FrameType.DARKFLAT, exposure_s=1.0, index=i)))
            assert len(builder.built) == (1 if i == 3 else 0)
        for i in range(5):
            sink.write(Frame(synthetic_data(20000, seed=10 + i, vignetting=True),
                             synthetic_meta(FrameType.FLAT, exposure_s=1.0, index=10 + i)))
        assert [m.frame_type for m in builder.built] == [FrameType.DARKFLAT, FrameType.FLAT]
        flat = builder.built[1]
        assert flat.precal.startswith("master darkflat master_darkflat_1s")
        assert flat.n_frames == 4            # built at the 4th flat; the 5th waits for the sweep
        header = fits.getheader(flat.path)
        assert header["PRECAL"] == flat.precal      # the whole name, over CONTINUE cards
        assert len(flat.precal) > 68
        assert len(lib.master_sources(flat.id)) == 4
        # sweep: the group has a frame in no master, so it is rebuilt and supersedes
        due = due_groups(lib, builder.policy)
        assert [g.key.frame_type for g in due] == [FrameType.FLAT]


def _frames(folder: Path, kind: FrameType, n: int, level: float, **kw):
    return [write_synthetic(folder / f"{kind.value}_{i}.fits", kind, level_adu=level, seed=i, **kw)
            for i in range(n)]


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    result.text = " ".join(result.output.split())
    return result


def test_library_commands(tmp_path, monkeypatch):
    from indical.cli import console
    monkeypatch.setattr(console, "_width", 250)   # tables wide enough to read in the test
    db = tmp_path / "lib" / "library.sqlite"
    raw = tmp_path / "raw"
    _frames(raw / "bias", FrameType.BIAS, 3, 300, exposure_s=0.0)
    _frames(raw / "flat", FrameType.FLAT, 3, 20000, vignetting=True)
    (raw / "junk.fits").write_bytes(b"junk")
    r = invoke("library", "--library", db, "ingest", raw, "--min-frames", 3)
    assert r.exit_code == 1, r.output   # the work went on past the junk, which was reported
    assert "6 frames added, 0 already known, 1 skipped" in r.text
    assert "junk.fits: not a readable FITS file" in r.text
    assert r.text.count("built master_") == 2
    r = invoke("library", "--library", db, "ingest", raw, "--min-frames", 3)
    assert "0 frames added, 6 already known" in r.text and "no group is due" in r.text
    # more flats: the sweep rebuilds the flat master, which supersedes the first
    for i in range(3, 5):
        write_synthetic(raw / "flat" / f"late_{i}.fits", FrameType.FLAT, level_adu=20000, seed=i)
    r = invoke("library", "--library", db, "ingest", raw, "--no-build")
    assert "2 frames added" in r.text and "built" not in r.text
    r = invoke("library", "--library", db, "sweep", "--min-frames", 3)
    assert r.exit_code == 0, r.output
    assert "built master_flat" in r.text and "from 5 frames" in r.text
    with CalibrationLibrary(db) as lib:
        flats = lib.masters(frame_type=FrameType.FLAT, include_superseded=True)
        assert len(flats) == 2 and flats[1].superseded_by == flats[0].id
        assert flats[0].precal.startswith("master bias")
    r = invoke("library", "--library", db, "ls", "--all")
    assert r.exit_code == 0, r.output
    assert "superseded" in r.text and "current" in r.text
    for m in flats:  # whole paths, never broken across lines
        assert str(m.path) in r.text
    r = invoke("library", "--library", db, "expiry", "flat", "0.000001")
    assert r.exit_code == 0
    r = invoke("library", "--library", db, "expiry", "light", "30")   # lights have no masters
    assert r.exit_code == 2 and "'light' is not one of 'bias', 'dark', 'darkflat', 'flat'" in r.text
    r = invoke("library", "expiry", "--help")
    assert "bias 180, dark 90, darkflat 30, flat 30" in r.text
    with CalibrationLibrary(db) as lib:
        assert lib.expiry_days(FrameType.FLAT) == 0.000001
        for m in lib.masters(frame_type=FrameType.FLAT):
            assert lib.is_expired(m, m.created_at + timedelta(seconds=1))
            assert not lib.is_expired(m, m.created_at + timedelta(seconds=0.05))


def test_sweep_indexes_files_written_but_not_indexed(tmp_path):
    """A crash between the atomic write and the index leaves a complete, unindexed file."""
    db = tmp_path / "library.sqlite"
    with CalibrationLibrary(db) as lib:
        orphan = write_synthetic(lib.frames_dir / "2026-03-20" / "dark_30s_1x1_0001.fits",
                                 FrameType.DARK, level_adu=500, exposure_s=30.0)
        assert lib.frames() == []
    r = invoke("library", "--library", db, "sweep")
    assert r.exit_code == 0, r.output
    with CalibrationLibrary(db) as lib:
        assert [Path(f.path) for f in lib.frames()] == [orphan.resolve()]


def test_sweep_removes_master_written_but_never_indexed(tmp_path):
    db = tmp_path / "library.sqlite"
    with CalibrationLibrary(db) as lib:
        lib.masters_dir.mkdir(parents=True)
        orphan = lib.masters_dir / "master_dark_30s_20260320T180000.fits"
        orphan.write_bytes(b"complete but unindexed")
        assert lib.unindexed_masters() == [orphan]
    r = invoke("library", "--library", db, "sweep")
    assert r.exit_code == 0 and "removed" in r.text and not orphan.exists()


def test_group_keys_keep_the_text_of_masters_already_recorded():
    """A new master supersedes an old one when their group keys are equal text; this is the
    text libraries hold since the first schema (a later configuration field adds nothing while
    unset)."""
    key = ConfigKey(FrameType.DARK, CameraConfig(camera="Sim Cam", gain=100.0, offset=10.0,
                                                 binning=Binning(2, 1), width=64, height=48),
                    filter=None, exposure_s=30.123456)
    assert group_key_json(key) == (
        '{"binning": "2x1", "camera": "Sim Cam", "exposure_s": 30.12, "filter": null, '
        '"frame_type": "dark", "gain": 100.0, "height": 48, "offset": 10.0, '
        '"readout_mode": null, "width": 64}')


def test_a_group_another_process_built_meanwhile_is_not_built_again(library_target, tmp_path):
    """Two processes saw the same group due; the one whose turn comes second finds its frames
    in a current master and returns that master instead of building a second one."""
    from indical.calib.autobuild import build_group

    raw = tmp_path / "raw"
    for i in range(4):
        write_synthetic(raw / f"bias_{i}.fits", FrameType.BIAS, level_adu=500, seed=i)
    policy = AutoBuildPolicy(min_frames_for_master=4)
    with CalibrationLibrary(library_target) as one, CalibrationLibrary(library_target) as two:
        one.ingest([raw])
        (seen_by_one,) = due_groups(one, policy)
        (seen_by_two,) = due_groups(two, policy)
        built = build_group(one, seen_by_one, policy)
        again = build_group(two, seen_by_two, policy)
        assert again.id == built.id and again.path == built.path
        assert [m.id for m in two.masters(include_superseded=True)] == [built.id]
        assert len(list((one.masters_dir).iterdir())) == 1
        # a frame more makes the group due again: that build goes ahead and supersedes
        write_synthetic(raw / "bias_4.fits", FrameType.BIAS, level_adu=500, seed=4)
        two.ingest([raw])
        (grown,) = due_groups(two, policy)
        newer = build_group(two, grown, policy)
        assert newer.id != built.id and [m.id for m in one.masters()] == [newer.id]
