"""Calibration library: idempotent ingest, counts from the database, supersession, expiry, and
the frame sink sequences use."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from indical.calib.config import CameraConfig
from indical.calib.ingest import inspect_file
from indical.calib.library import CalibrationLibrary, LibraryError, MasterRecord
from indical.calib.sink import LibrarySink
from indical.frame import Binning, Frame, FrameType
from indical.sinks import FrameQuery, FrameSink
from indical.testing.frames import synthetic_data, synthetic_meta, write_synthetic


@pytest.fixture
def lib(library_target):
    """A new library, on SQLite and on PostgreSQL."""
    with CalibrationLibrary(library_target) as library:
        yield library


def test_ingest_is_idempotent_and_reports_bad_files(lib, tmp_path):
    raw = tmp_path / "raw"
    for i in range(3):
        write_synthetic(raw / f"flat_{i}.fits", FrameType.FLAT, seed=i)
    (raw / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    first = lib.ingest([raw])
    assert len(first.added) == 3
    assert [p.name for p, _ in first.skipped] == ["broken.fits"]
    again = lib.ingest([raw])
    assert again.added == [] and len(again.known) == 3
    assert len(lib.frames()) == 3
    record = lib.frames()[0]
    assert record.median_adu == pytest.approx(20000, abs=5)
    assert 2 < record.mad_adu < 6  # MAD of normal noise with sigma 5 is ~3.4


def test_wal_mode_and_schema(tmp_path):
    CalibrationLibrary(tmp_path / "library.sqlite").close()
    db = sqlite3.connect(tmp_path / "library.sqlite")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()
    assert {"frames", "masters", "master_sources", "expiry"} <= tables


def test_sink_writes_indexes_and_counts(lib):
    sink = LibrarySink(lib)
    assert isinstance(sink, FrameSink)
    seen = []
    sink.on_indexed = seen.append
    for i in range(4):
        meta = synthetic_meta(FrameType.DARK, exposure_s=30.0, index=i, temperature_c=-10.0 + 0.1 * i)
        path = sink.write(Frame(synthetic_data(500, seed=i), meta))
        assert path.is_file() and path.is_relative_to(lib.frames_dir)
    sink.write(Frame(synthetic_data(500), synthetic_meta(FrameType.DARK, exposure_s=60.0)))
    assert len(seen) == 5
    assert sink.count(FrameQuery(FrameType.DARK)) == 5
    assert sink.count(FrameQuery(FrameType.DARK, exposure_s=30.3)) == 4     # within 2 %
    assert sink.count(FrameQuery(FrameType.DARK, exposure_s=31.0)) == 0
    assert sink.count(FrameQuery(FrameType.DARK, camera="Sim Cam", gain=100.0, offset=10.0,
                                 binning=Binning(1, 1))) == 5
    assert sink.count(FrameQuery(FrameType.DARK, binning=Binning(2, 2))) == 0
    assert sink.count(FrameQuery(FrameType.DARK, temperature_c=-9.9, temperature_tol_c=0.15)) == 4
    assert sink.count(FrameQuery(FrameType.FLAT)) == 0
    since = datetime(2026, 3, 20, 18, 0, 15, tzinfo=timezone.utc)
    assert sink.count(FrameQuery(FrameType.DARK, since=since)) == 2


def test_count_agrees_with_frame_query_matches(lib, tmp_path):
    """The SQL answer and FrameQuery.matches (what FitsFolderSink uses) agree."""
    metas = [synthetic_meta(FrameType.FLAT, index=i, filter=f, exposure_s=e, gain=g)
             for i, (f, e, g) in enumerate([("L", 1.0, 100.0), ("R", 1.0, 100.0), ("L", 2.0, 0.0),
                                            ("L", 1.01, 100.0), (None, 1.0, 100.0)])]
    sink = LibrarySink(lib)
    for i, m in enumerate(metas):
        sink.write(Frame(synthetic_data(10000, seed=i), m))
    queries = [FrameQuery(FrameType.FLAT), FrameQuery(FrameType.FLAT, filter="L"),
               FrameQuery(FrameType.FLAT, exposure_s=1.0), FrameQuery(FrameType.FLAT, gain=0.0),
               FrameQuery(FrameType.FLAT, filter="L", exposure_s=1.0, exposure_rel_tol=0.001)]
    for q in queries:
        assert lib.count(q) == sum(q.matches(m) for m in metas), q


def _master(path: Path, temperature_c: float | None, key: str = "k1") -> MasterRecord:
    path.write_bytes(b"x")
    config = CameraConfig(camera="Sim Cam", readout_mode=None, gain=100.0, offset=10.0,
                          binning=Binning(1, 1), width=64, height=48, temperature_c=temperature_c)
    return MasterRecord(path=str(path), frame_type=FrameType.DARK, config=config, filter=None,
                        exposure_s=30.0, group_key=key, method="sigma",
                        parameters={"sigma_low": 3.0}, n_frames=2)


def test_new_master_supersedes_same_configuration(lib, tmp_path):
    a = lib.add_master(_master(tmp_path / "a.fits", -10.0), [])
    b = lib.add_master(_master(tmp_path / "b.fits", -20.0), [])        # other temperature
    c = lib.add_master(_master(tmp_path / "c.fits", -10.5), [])        # replaces a
    d = lib.add_master(_master(tmp_path / "d.fits", -10.0, key="k2"), [])  # other config
    current = {m.id for m in lib.masters()}
    assert current == {b.id, c.id, d.id}
    everything = {m.id: m for m in lib.masters(include_superseded=True)}
    assert everything[a.id].superseded_by == c.id
    assert everything[a.id].parameters == {"sigma_low": 3.0}


def test_master_links_sources_and_needs_its_file(lib, tmp_path):
    raw = tmp_path / "raw"
    for i in range(2):
        write_synthetic(raw / f"d{i}.fits", FrameType.DARK, level_adu=500, seed=i)
    ids = [r.id for r in lib.ingest([raw]).added]
    m = lib.add_master(_master(tmp_path / "m.fits", -10.0), ids)
    assert sorted(r.id for r in lib.master_sources(m.id)) == sorted(ids)
    assert lib.frame_ids_in_current_masters() == set(ids)
    with pytest.raises(LibraryError, match="nothere.fits"):
        lib.add_master(MasterRecord(**{**_master(tmp_path / "x.fits", 1.0).__dict__,
                                       "path": str(tmp_path / "nothere.fits")}), ids)


def test_expiry_per_type(lib, tmp_path):
    m = lib.add_master(_master(tmp_path / "a.fits", -10.0), [])
    now = m.created_at
    assert not lib.is_expired(m, now + timedelta(days=89))
    assert lib.is_expired(m, now + timedelta(days=91))          # dark default: 90 days
    lib.set_expiry(FrameType.DARK, 7)
    assert lib.is_expired(m, now + timedelta(days=8))
    with pytest.raises(ValueError):
        lib.set_expiry(FrameType.DARK, 0)


def test_duplicate_content_moved_file_updates_path(lib, tmp_path):
    p = write_synthetic(tmp_path / "a.fits", FrameType.BIAS, level_adu=300)
    lib.ingest([p])
    moved = p.rename(tmp_path / "b.fits")
    result = lib.ingest([moved])
    assert result.added == [] and lib.frames()[0].path == str(moved.resolve())


def test_not_a_database_names_the_file(tmp_path):
    bad = tmp_path / "lib.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="lib.sqlite"):
        CalibrationLibrary(bad)


def test_ingest_reads_compressed_files(lib, tmp_path):
    from astropy.io import fits
    from indical.fits.keywords import meta_to_header
    data = synthetic_data(1234, seed=3)
    header = meta_to_header(synthetic_meta(FrameType.BIAS, exposure_s=0.0))
    hdul = fits.HDUList([fits.PrimaryHDU(header=header), fits.CompImageHDU(data=data)])
    path = tmp_path / "bias.fits.fz"
    hdul.writeto(path)
    record = inspect_file(path)
    assert record.meta.frame_type is FrameType.BIAS
    assert (record.width, record.height) == (64, 48)
    assert record.median_adu == pytest.approx(float(np.median(data)), abs=2)


def test_a_frames_bayer_pattern_and_offsets_are_indexed(lib, tmp_path):
    path = write_synthetic(tmp_path / "raw" / "flat.fits", FrameType.FLAT, bayer_pattern="RGGB",
                           bayer_offset_x=1, bayer_offset_y=1)
    mono = write_synthetic(tmp_path / "raw" / "mono.fits", FrameType.FLAT, seed=1)
    lib.ingest([path, mono])
    (colour,) = [f for f in lib.frames() if Path(f.path).name == "flat.fits"]
    meta = colour.meta
    assert (meta.bayer_pattern, meta.bayer_offset_x, meta.bayer_offset_y) == ("RGGB", 1, 1)
    assert meta.effective_bayer == "BGGR"
    (plain,) = [f for f in lib.frames() if Path(f.path).name == "mono.fits"]
    assert plain.meta.effective_bayer is None
