"""The tasks `--scheduler` runs on Dask workers, run here in-process without Dask: bands of rows
put together are the local combine bit for bit, a master built from bands is the local master
byte for byte, a task run twice writes once; and a local run never imports Dask."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from indical.calib import cluster_tasks as tasks
from indical.calib.combine.engine import CombineInput, combine_files, measure_level
from indical.calib.combine.options import CombineOptions, Method
from indical.calib.master import MasterSpec, Precal, build_master, write_master
from indical.calib.rawio import open_raw
from indical.cli import main
from indical.errors import FitsError
from indical.fits.header import Header
from indical.frame import FrameType
from indical.testing.frames import write_synthetic

NOW = datetime(2026, 12, 2, 21, 0, 5, tzinfo=timezone.utc)


def _flats(folder: Path, n: int = 7, shape=(101, 67)) -> list[Path]:
    return [write_synthetic(folder / f"flat_{k}.fits", FrameType.FLAT, level_adu=20000 + 300 * k,
                            seed=k, shape=shape, vignetting=True, noise_adu=40) for k in range(n)]


@pytest.mark.parametrize("method", ["sigma", "median", "mean", "minmax"])
@pytest.mark.parametrize("stored", ["int16", "float32"])
def test_bands_put_together_are_the_whole_combine(tmp_path, method, stored):
    paths = _flats(tmp_path)
    if stored == "float32":   # not read from the files by the kernel: the cube path
        for p in paths:
            data = fits.getdata(p).astype(np.float32) + np.float32(0.25)
            fits.writeto(p, data, fits.getheader(p), overwrite=True)
    levels = []
    for p in paths:
        with open_raw(p) as image:
            levels.append(measure_level(image, None, 0.0))
    job = CombineInput(paths=paths, options=CombineOptions(method=Method(method)), normalise=True,
                       levels_adu=levels, rejection_map=True, memory_limit_bytes=20000)
    whole = combine_files(job)
    bands = [combine_files(job, rows=(r0, min(101, r0 + 13))) for r0 in range(0, 101, 13)]
    assert np.concatenate([b.data for b in bands]).tobytes() == whole.data.tobytes()
    assert np.concatenate([b.rejected for b in bands]).tobytes() == whole.rejected.tobytes()
    assert bands[0].data.shape == (13, 67)
    with pytest.raises(ValueError, match="not a band"):
        combine_files(job, rows=(50, 200))


@pytest.mark.parametrize("bayer", [None, "RGGB"])
def test_master_from_bands_is_the_local_master_byte_for_byte(tmp_path, bayer):
    paths = _flats(tmp_path / "raw")
    if bayer:   # colour flats: scaled per CFA position, with levels measured once by the survey
        for p in paths:
            fits.setval(p, "BAYERPAT", value=bayer)
    precal = Precal(image=np.full((101, 67), 480.0, dtype=np.float32), description="bias file")
    spec = MasterSpec(paths=paths, frame_type=FrameType.FLAT, precal=precal)
    for name in ("local", "bands", "whole"):
        (tmp_path / name).mkdir()
    write_master(build_master(spec, now=NOW), tmp_path / "local" / "m.fits",
                 rejection_map=tmp_path / "local" / "rej.fits")
    plan = tasks.survey_master(spec, tasks.this_build())
    assert tasks.plan_size(plan) == (101, 67, 7, 2)
    assert (plan.job.cell_levels_adu is not None) == plan.job.per_cell_position == bool(bayer)
    # bands of an odd number of rows: the cell positions follow the frame's own rows
    bands = [tasks.combine_band(plan, r0, min(101, r0 + 29)) for r0 in range(0, 101, 29)]
    written = tasks.write_master_from_bands(spec, plan, bands, str(tmp_path / "bands" / "m.fits"),
                                            NOW, rejection_map=str(tmp_path / "bands" / "rej.fits"))
    assert written.imagetyp == "Master Flat" and written.n_frames == 7
    whole = tasks.write_master_whole(spec, plan, str(tmp_path / "whole" / "m.fits"), NOW,
                                     rejection_map=str(tmp_path / "whole" / "rej.fits"))
    assert whole.method == "sigma"
    for name in ("m.fits", "rej.fits"):
        local = (tmp_path / "local" / name).read_bytes()
        assert (tmp_path / "bands" / name).read_bytes() == local
        assert (tmp_path / "whole" / name).read_bytes() == local


def test_a_task_run_twice_writes_once(tmp_path):
    out = tmp_path / "m.fits"
    data, header = np.arange(12, dtype=np.float32).reshape(3, 4), Header()
    tasks.write_once(out, data, header, overwrite=False)
    before = out.stat()
    tasks.write_once(out, data, header, overwrite=False)   # the rerun: same bytes, left alone
    after = out.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    with pytest.raises(FitsError, match="m.fits: already exists; use --force"):
        tasks.write_once(out, data + 1, header, overwrite=False)
    tasks.write_once(out, data + 1, header, overwrite=True)
    assert fits.getdata(out)[0, 0] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fits"]   # no temporary left


def test_survey_errors_come_back_as_plain_messages(tmp_path):
    paths = _flats(tmp_path, n=2) + [tmp_path / "missing.fits"]
    with pytest.raises(tasks.TaskError, match="missing.fits") as caught:
        tasks.survey_master(MasterSpec(paths=paths, frame_type=FrameType.FLAT),
                            tasks.this_build())
    import pickle
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)


_NO_DASK = """
import sys
from click.testing import CliRunner
from indical.cli import main
args = sys.argv[1:]
runs = [["master", *args[:3], "-o", args[3]], ["calibrate", args[0], "-o", args[4], "--library",
        args[5]], ["calibrate", args[0], "--flat", args[3], "-o", args[4] + "_given"],
        ["library", "--library", args[5], "ingest", args[6]]]
for argv in runs:
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    print(result.exit_code, result.output)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
print("DASK MODULES:", loaded)
"""


def test_a_local_run_never_imports_dask(tmp_path, monkeypatch):
    monkeypatch.delenv("INDICAL_SCHEDULER", raising=False)
    paths = _flats(tmp_path / "raw", n=3)
    lib = tmp_path / "lib.sqlite"
    from indical.calib.library import CalibrationLibrary
    CalibrationLibrary(lib).close()
    run = subprocess.run([sys.executable, "-c", _NO_DASK, *map(str, paths), str(tmp_path / "m.fits"),
                          str(tmp_path / "cal"), str(lib), str(tmp_path / "raw")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m.fits").is_file()          # the master was built, locally
    assert "3 frames added" in run.stdout           # ingest (and its --build) ran, locally
    assert "using flat: " in run.stdout             # so did calibrate with a given master
    assert "DASK MODULES: []" in run.stdout, run.stdout


def test_scheduler_without_dask_installed_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None\n"
            "from indical.cli import main\n"
            "main(['master', *sys.argv[1:4], '-o', sys.argv[4], '--scheduler', "
            "'tcp://127.0.0.1:1'])")
    paths = _flats(tmp_path / "raw", n=3)
    run = subprocess.run([sys.executable, "-c", code, *map(str, paths), str(tmp_path / "m.fits")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "--scheduler needs Dask distributed" in run.stderr and "indical[dask]" in run.stderr
    assert not (tmp_path / "m.fits").exists()


def test_options_that_need_or_exclude_a_scheduler(tmp_path):
    paths = [str(p) for p in _flats(tmp_path / "raw", n=3)]
    run = CliRunner().invoke(main, ["master", *paths, "-o", str(tmp_path / "m.fits"),
                                    "--rows-per-task", "10"])
    assert run.exit_code == 2 and "--rows-per-task needs --scheduler" in run.output


def test_a_task_on_a_worker_of_another_build_refuses(tmp_path):
    """A worker that joined after the client checked them all: each task checks the client's
    build against its own and refuses, naming both, before reading anything."""
    mine = tasks.this_build()
    assert len(mine.code) == len(mine.kernel) == 16 and mine.kernel != "unknown"
    tasks.check_build(mine)
    other = tasks.Build(mine.version, "0" * 16, mine.kernel)
    with pytest.raises(tasks.TaskError, match=re.escape(f"runs {mine}, the client {other}")):
        tasks.inspect(str(_flats(tmp_path, n=1)[0]), None, other)


def test_what_a_worker_does_not_see_as_the_client_does(tmp_path):
    light = _flats(tmp_path / "lights", n=1)[0]
    st = light.stat()
    marker = tmp_path / "out" / ".indical-shared-x"
    marker.parent.mkdir()
    marker.write_text("token")
    assert tasks.sees([(str(light), st.st_size, st.st_mtime_ns)], [(str(marker), "token")]) == []
    said = tasks.sees([(str(light), st.st_size + 1, st.st_mtime_ns),
                       (str(tmp_path / "gone" / "l.fits"), 1, 1)],
                      [(str(marker), "another token"), (str(tmp_path / "no" / ".m"), "t")])
    assert said == [f"{light}: another file at this path (size or time differ from the "
                    f"client's)",
                    f"{tmp_path / 'gone'}: can't see l.fits there (No such file or directory)",
                    f"{tmp_path / 'out'}: another folder at this path (a file the client "
                    f"wrote there is not in it)",
                    f"{tmp_path / 'no'}: no such folder there"]


def _installed_layout(root: Path, dest: Path) -> Path:
    """The package as a wheel installs it: drivers/, simulators/, sequences/ and examples/
    copied inside indical/ (pyproject's package-dir; the checkout's links are followed)."""
    import shutil
    import tomllib
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):  # parents before children
        shutil.copytree(root / folder, dest.joinpath(*package.split(".")), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    return dest


def test_a_wheel_and_an_editable_install_of_the_same_code_agree(tmp_path):
    """The code hash leaves out the folders a wheel puts inside the package and an editable
    install maps from elsewhere: the same commit installed either way is the same build."""
    from test_import_contracts import ROOT
    editable = ROOT / "indical"
    wheel = _installed_layout(ROOT, tmp_path) / "indical"
    assert (wheel / "drivers").is_dir() and not (wheel / "drivers").is_symlink()
    assert (editable / "drivers").is_symlink()      # the checkout links it (decision 018)
    assert tasks.code_sha(wheel) == tasks.code_sha(editable) == tasks.this_build().code
    (wheel / "calib" / "apply.py").write_text((wheel / "calib" / "apply.py").read_text() + "#\n")
    assert tasks.code_sha(wheel) != tasks.code_sha(editable)


def test_the_build_is_the_code_as_imported_not_as_on_disk_later(monkeypatch):
    """A worker whose indical is edited or reinstalled while it runs still runs the code it
    imported: its build is hashed at import, so the files on disk afterwards do not change it
    and the client refuses it rather than trusting files it has not loaded."""
    imported = tasks.this_build().code
    monkeypatch.setattr(tasks, "code_sha", lambda package: "edited on disk")
    tasks.this_build.cache_clear()
    try:
        assert tasks.this_build().code == imported != "edited on disk"
    finally:
        tasks.this_build.cache_clear()
