"""The cases of the bad-input corpus (see test_bad_input.py). Each builds its bad input in a
World and returns the command line; the expected exit status and a regular expression the
message must match follow."""

from __future__ import annotations

from badinput_world import Case, World
from indical.frame import FrameType

B, D, DF, F, L = (FrameType.BIAS, FrameType.DARK, FrameType.DARKFLAT, FrameType.FLAT,
                  FrameType.LIGHT)

CASES: list[Case] = []


def case(name: str, code: int, message: str, *, may_write: tuple[str, ...] = (),
         via: str = "in-process", env: dict[str, str] | None = None):
    # calibrate indexes the lights it sees in the library: rows added, none changed
    may_change = ("library/library.sqlite",) if name.startswith("calibrate:") else ()

    def add(setup):
        CASES.append(Case(name, setup, code, message, may_write, via, env or {}, may_change))
        return setup
    return add


def _darks(w: World, folder: str = "raw", n: int = 3, exposure_s: float = 1.0):
    return w.frames(folder, D, n, exposure_s=exposure_s)


def _out(w: World) -> str:
    w.folder("out")
    return w.s("out/m.fits")


# == indical master ===============================================================================
@case("master: missing input file", 2, r"nothere\.fits: no such file")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), w.s("nothere.fits"), "-o", _out(w)]


@case("master: folder without FITS files", 2, r"empty: no FITS files in it")
def _(w):
    w.folder("empty")
    w.text("empty/notes.txt", "x")
    return ["master", w.s("empty"), "-o", _out(w)]


@case("master: a text file named .fits", 2, r"junk\.fits: not a readable FITS file")
def _(w):
    _darks(w)
    w.text("raw/junk.fits", "hello, not FITS\n" * 20)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: an empty file", 2, r"empty\.fits: (the file is empty|not a readable FITS file)")
def _(w):
    _darks(w)
    w.text("raw/empty.fits", b"")
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: a truncated file", 2, r"dark_1s_1\.fits: .*(truncated|short)")
def _(w):
    _darks(w)
    p = w.p("raw/dark_1s_1.fits")
    p.write_bytes(p.read_bytes()[:4000])
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: header only, no data", 2, r"dark_1s_2\.fits: .*(truncated|short|no image)")
def _(w):
    _darks(w)
    p = w.p("raw/dark_1s_2.fits")
    p.write_bytes(p.read_bytes()[:2880])
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: NaN pixels", 2, r"nan\.fits: .*NaN")
def _(w):
    import numpy as np
    from astropy.io import fits
    _darks(w)
    data = np.full((24, 32), 500.0, dtype=np.float32)
    data[3, 4] = np.nan
    fits.writeto(w.p("raw/nan.fits"), data, fits.Header({"IMAGETYP": "Dark Frame",
                                                         "EXPTIME": 1.0}))
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: an all-zero frame", 2, r"zero\.fits: every pixel is zero")
def _(w):
    import numpy as np
    _darks(w)
    w.one("raw/zero.fits", D, data=np.zeros((24, 32), np.uint16))
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: mixed types, no --type", 2, r"different types")
def _(w):
    _darks(w)
    w.frames("raw", B)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: light frames", 2, r"light frames; masters are made from")
def _(w):
    for i in range(3):
        w.light(f"raw/l{i}.fits", seed=i)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: a master among the inputs", 2, r"m0\.fits: is a master")
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/m0.fits", D, seed=9), IMAGETYP="Master Dark")
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: frames of different sizes", 2, r"different sizes.*32x24.*(40x30|30x40)")
def _(w):
    _darks(w)
    w.one("raw/big.fits", D, shape=(30, 40), seed=7)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: too few frames for minmax", 2, r"minmax.*frames")
def _(w):
    _darks(w, n=2)
    return ["master", w.s("raw"), "-o", _out(w), "--combine", "minmax", "--clip", "1"]


@case("master: darks of different exposures", 2,
      r"darks of different exposures.*1 s: .*dark_1s_0\.fits.*30 s: .*dark_30s_0\.fits.*--group")
def _(w):
    _darks(w, exposure_s=1.0)
    _darks(w, exposure_s=30.0)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: dark flats of different exposures", 2,
      r"dark flats of different exposures.*2 s: .*5 s: ")
def _(w):
    w.frames("raw", DF, exposure_s=2.0)
    w.frames("raw", DF, exposure_s=5.0)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: --type dark over mixed exposures", 2, r"darks of different exposures")
def _(w):
    _darks(w, exposure_s=1.0)
    _darks(w, exposure_s=30.0)
    return ["master", w.s("raw"), "-o", _out(w), "--type", "dark"]


@case("master: a dark without EXPTIME", 2, r"noexp\.fits: no exposure time \(EXPTIME")
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/noexp.fits", D, seed=5), EXPTIME=None, EXPOSURE=None)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: EXPTIME = 'abc'", 2, r"abc\.fits: EXPTIME = 'abc' is not a number")
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/abc.fits", D, seed=5), EXPTIME="abc", EXPOSURE=None)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: EXPTIME = -5", 2, r"neg\.fits: EXPTIME = -5(\.0)? is negative")
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/neg.fits", D, seed=5), EXPTIME=-5.0, EXPOSURE=None)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: EXPTIME and EXPOSURE disagree", 2, r"twice\.fits: EXPTIME = 1.* but EXPOSURE = 30")
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/twice.fits", D, seed=5), EXPTIME=1.0, EXPOSURE=30.0)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: a flat without exposure time", 2, r"flat_nx\.fits: no exposure time")
def _(w):
    w.frames("raw", F)
    w.edit_header(w.one("raw/flat_nx.fits", F, seed=4), EXPTIME=None, EXPOSURE=None)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: bias with a long exposure", 2, r"b9\.fits: header says bias but the exposure")
def _(w):
    w.frames("raw", B)
    w.edit_header(w.one("raw/b9.fits", B, seed=9), EXPTIME=30.0, EXPOSURE=30.0)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: unknown IMAGETYP", 2, r"odd\.fits: .*unknown frame type.*--type")
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/odd.fits", D, seed=5), IMAGETYP="Weird Thing")
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: -o into a read-only folder", 2, r"ro: can't write there \(permission denied\)",
      via="unprivileged")
def _(w):
    _darks(w)
    ro = w.folder("ro")
    ro.chmod(0o555)
    w.cleanups.append(lambda: ro.chmod(0o755))
    return ["master", w.s("raw"), "-o", w.s("ro/m.fits")]


@case("master: -o into a missing folder", 2, r"nofolder: the folder does not exist")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "-o", w.s("nofolder/m.fits")]


@case("master: -o names a folder", 2, r"out' is a directory")
def _(w):
    _darks(w)
    w.folder("out")
    return ["master", w.s("raw"), "-o", w.s("out")]


@case("master: -o exists, no --force", 2, r"m\.fits: already exists; use --force")
def _(w):
    _darks(w)
    w.text("out/m.fits", "previous master")
    return ["master", w.s("raw"), "-o", w.s("out/m.fits")]


@case("master: -o names one of its inputs", 2, r"dark_1s_0\.fits: .*is one of the inputs")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "-o", w.s("raw/dark_1s_0.fits"), "--force"]


@case("master: -o names an input through a link", 2, r"link\.fits: .*is one of the inputs")
def _(w):
    _darks(w)
    w.p("link.fits").symlink_to(w.p("raw/dark_1s_1.fits"))
    return ["master", w.s("raw"), "-o", w.s("link.fits"), "--force"]


@case("master: --rejection-map into a read-only folder", 2,
      r"ro: can't write there \(permission denied\)",
      via="unprivileged")
def _(w):
    _darks(w)
    w.folder("out")
    ro = w.folder("ro")
    ro.chmod(0o555)
    w.cleanups.append(lambda: ro.chmod(0o755))
    return ["master", w.s("raw"), "-o", w.s("out/m.fits"), "--rejection-map", w.s("ro/rej.fits")]


@case("master: --rejection-map into a missing folder", 2, r"gone: the folder does not exist")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "-o", _out(w), "--rejection-map", w.s("gone/rej.fits")]


@case("master: --rejection-map exists", 2, r"rej\.fits: already exists; use --force")
def _(w):
    _darks(w)
    w.text("out/rej.fits", "old")
    return ["master", w.s("raw"), "-o", _out(w), "--rejection-map", w.s("out/rej.fits")]


@case("master: --rejection-map is the master", 2, r"m\.fits: .*both the master and the rejection")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "-o", _out(w), "--rejection-map", w.s("out/m.fits")]


@case("master: --precal file missing", 2, r"nobias\.fits: can't be read \(No such file")
def _(w):
    w.frames("raw", F)
    return ["master", w.s("raw"), "-o", _out(w), "--precal", w.s("nobias.fits")]


@case("master: --precal file of another size", 2, r"precalibration image is 10x10 but the frames are 32x24")
def _(w):
    import numpy as np
    from astropy.io import fits
    w.frames("raw", F)
    fits.writeto(w.p("bias_small.fits"), np.full((10, 10), 500, np.float32),
                 fits.Header({"IMAGETYP": "Master Bias"}))
    return ["master", w.s("raw"), "-o", _out(w), "--precal", w.s("bias_small.fits")]


@case("master: --precal pedestal:abc", 2, r"Invalid value for --precal: pedestal:N needs a number")
def _(w):
    w.frames("raw", F)
    return ["master", w.s("raw"), "-o", _out(w), "--precal", "pedestal:abc"]


@case("master: --precal file is not FITS", 2, r"bias\.txt: not a readable FITS file")
def _(w):
    w.frames("raw", F)
    w.text("bias.txt", "bias\n" * 100)
    return ["master", w.s("raw"), "-o", _out(w), "--precal", w.s("bias.txt")]


@case("master: --group with an unknown key", 2, r"Invalid value for --group: unknown grouping key.*colour")
def _(w):
    _darks(w)
    w.folder("out")
    return ["master", w.s("raw"), "--group", "size,colour", "--out-dir", w.s("out")]


@case("master: --group without --out-dir", 2, r"--group needs --out-dir")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "--group", "size"]


@case("master: neither -o nor --group", 2, r"give either -o")
def _(w):
    _darks(w)
    return ["master", w.s("raw")]


@case("master: --group, every group too small", 2, r"no group has enough frames")
def _(w):
    _darks(w, n=2)
    w.folder("out")
    return ["master", w.s("raw"), "--group", "size,exposure", "--out-dir", w.s("out")]


@case("master: --group, --out-dir read-only", 2, r"ro: can't write there \(permission denied\)",
      via="unprivileged")
def _(w):
    _darks(w)
    ro = w.folder("ro")
    ro.chmod(0o555)
    w.cleanups.append(lambda: ro.chmod(0o755))
    return ["master", w.s("raw"), "--group", "size,exposure", "--out-dir", w.s("ro")]


@case("master: --group, --out-dir is a file", 2, r"isfile' is a file")
def _(w):
    _darks(w)
    w.text("isfile", "x")
    return ["master", w.s("raw"), "--group", "size,exposure", "--out-dir", w.s("isfile")]


@case("master: --memory-limit 0", 2, r"Invalid value for '--memory-limit': 0 is not in the range x>=1")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "-o", _out(w), "--memory-limit", "0"]


@case("master: --sigma-low negative", 2, r"sigma_low must be a positive number, got -1")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "-o", _out(w), "--sigma-low", "-1"]


@case("master: --ignore-type without --type", 2, r"--ignore-type needs --type")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "-o", _out(w), "--ignore-type"]


@case("master: --type flat on darks", 2, r"dark_1s_0\.fits: header says dark, not flat")
def _(w):
    _darks(w)
    return ["master", w.s("raw"), "-o", _out(w), "--type", "flat"]


@case("master: a 'flat' as dark as a dark", 2, r"dim\.fits: header says flat but its level")
def _(w):
    w.frames("raw", F)
    w.one("raw/dim.fits", F, level=500.0, seed=8)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: a lit 'dark'", 2, r"lit\.fits: header says dark but its level")
def _(w):
    _darks(w)
    w.one("raw/lit.fits", D, level=20000.0, seed=8)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: unreadable file", 2, r"locked\.fits: can't be read \(Permission denied\)", via="unprivileged")
def _(w):
    _darks(w)
    p = w.one("raw/locked.fits", D, seed=6)
    p.chmod(0)
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: unreadable subfolder", 2, r"raw/sub: can't be read \(permission denied\); fix its permissions",
      via="unprivileged")
def _(w):
    _darks(w)
    sub = w.frames("raw/sub", D, start=10)
    sub.chmod(0)
    w.cleanups.append(lambda: sub.chmod(0o755))
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: disk full", 2, r"m\.fits: .*disk is full|m\.fits: .*larger than this process")
def _(w):
    _darks(w)
    full = w.full("full")
    return ["master", w.s("raw"), "-o", str(full / "m.fits")]


@case("master: --move-inputs over existing names", 2, r"moved: already holds dark_1s_0\.fits",
      may_write=("out/m.fits",))
def _(w):
    _darks(w)
    w.text("moved/dark_1s_0.fits", "taken")
    return ["master", w.s("raw"), "-o", _out(w), "--move-inputs", w.s("moved")]


@case("master: --precal library without a library", 2,
      r"nolib/library\.sqlite: no calibration library there")
def _(w):
    w.frames("raw", F)
    return ["master", w.s("raw"), "-o", _out(w), "--precal", "library", "--library",
            w.s("nolib/library.sqlite")]


@case("master: non-ASCII FILTER (UTF-8)", 0, r"wrote .*m\.fits.*filter H\\u03b1|wrote .*m\.fits",
      may_write=("out/m.fits",))
def _(w):
    folder = w.frames("raw", F, filter="Ha")
    for p in sorted(folder.iterdir()):
        w.raw_header_card(p, "FILTER", "'Hα'".encode())
    return ["master", w.s("raw"), "-o", _out(w)]


@case("master: FILTER of invalid bytes", 0, r"wrote .*m\.fits", may_write=("out/m.fits",))
def _(w):
    folder = w.frames("raw", F, filter="Ha")
    for p in sorted(folder.iterdir()):
        w.raw_header_card(p, "FILTER", b"'H\xe1\xff'")
    return ["master", w.s("raw"), "-o", _out(w)]


# == indical library ingest =======================================================================
def _lib(w: World) -> str:
    return w.s("lib/library.sqlite")


def _ingest(w: World, *paths: str) -> list[str]:
    return ["library", "--library", _lib(w), "ingest", *paths, "--no-build"]


_LIB_FILES = ("lib/library.sqlite", "lib/status.sqlite")


@case("ingest: folder does not exist", 2, r"nowhere.*does not exist")
def _(w):
    return _ingest(w, w.s("nowhere"))


@case("ingest: a text file named .fits", 1, r"skipped .*junk\.fits: not a readable FITS file.*3 frames added, 0 already known, 1 skipped",
      may_write=_LIB_FILES)
def _(w):
    _darks(w)
    w.text("raw/junk.fits", "nope\n" * 50)
    return _ingest(w, w.s("raw"))


@case("ingest: a truncated file", 1, r"skipped .*dark_1s_0\.fits: .*(truncated|short)",
      may_write=_LIB_FILES)
def _(w):
    _darks(w)
    p = w.p("raw/dark_1s_0.fits")
    p.write_bytes(p.read_bytes()[:3500])
    return _ingest(w, w.s("raw"))


@case("ingest: a dark without EXPTIME", 1,
      r"skipped .*noexp\.fits: no exposure time \(EXPTIME.*3 frames added.*1 skipped",
      may_write=_LIB_FILES)
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/noexp.fits", D, seed=5), EXPTIME=None, EXPOSURE=None)
    return _ingest(w, w.s("raw"))


@case("ingest: EXPTIME = 'abc'", 1, r"skipped .*abc\.fits: EXPTIME = 'abc' is not a number",
      may_write=_LIB_FILES)
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/abc.fits", D, seed=5), EXPTIME="abc", EXPOSURE=None)
    return _ingest(w, w.s("raw"))


@case("ingest: EXPTIME = -5", 1, r"skipped .*neg\.fits: EXPTIME = -5(\.0)? is negative",
      may_write=_LIB_FILES)
def _(w):
    _darks(w)
    w.edit_header(w.one("raw/neg.fits", D, seed=5), EXPTIME=-5, EXPOSURE=None)
    return _ingest(w, w.s("raw"))


@case("ingest: a light without EXPTIME", 1, r"skipped .*l0\.fits: no exposure time",
      may_write=_LIB_FILES)
def _(w):
    w.edit_header(w.light("raw/l0.fits"), EXPTIME=None, EXPOSURE=None)
    return _ingest(w, w.s("raw"))


@case("ingest: NaN pixels", 1, r"skipped .*nan\.fits: .*NaN", may_write=_LIB_FILES)
def _(w):
    import numpy as np
    from astropy.io import fits
    data = np.full((24, 32), 500.0, dtype=np.float32)
    data[0, 0] = np.inf
    w.folder("raw")
    fits.writeto(w.p("raw/nan.fits"), data, fits.Header({"IMAGETYP": "Dark Frame",
                                                         "EXPTIME": 1.0}))
    return _ingest(w, w.s("raw"))


@case("ingest: an all-zero frame", 1, r"skipped .*zero\.fits: every pixel is zero",
      may_write=_LIB_FILES)
def _(w):
    import numpy as np
    w.one("raw/zero.fits", D, data=np.zeros((24, 32), np.uint16))
    return _ingest(w, w.s("raw"))


@case("ingest: unknown IMAGETYP", 1, r"skipped .*odd\.fits: .*unknown frame type",
      may_write=_LIB_FILES)
def _(w):
    w.edit_header(w.one("raw/odd.fits", D), IMAGETYP="Mystery")
    return _ingest(w, w.s("raw"))


@case("ingest: a master", 1, r"skipped .*mb\.fits: is a master", may_write=_LIB_FILES)
def _(w):
    w.edit_header(w.one("raw/mb.fits", B), IMAGETYP="Master Bias")
    return _ingest(w, w.s("raw"))


@case("ingest: unreadable subfolder", 1,
      r"skipped .*sub: (can't be read|permission denied).*3 frames added.*1 skipped",
      may_write=_LIB_FILES, via="unprivileged")
def _(w):
    _darks(w)
    sub = w.frames("raw/sub", D, start=10)
    sub.chmod(0)
    w.cleanups.append(lambda: sub.chmod(0o755))
    return _ingest(w, w.s("raw"))


@case("ingest: unreadable file", 1, r"skipped .*locked\.fits: can't be read \(Permission denied\)",
      may_write=_LIB_FILES, via="unprivileged")
def _(w):
    _darks(w)
    w.one("raw/locked.fits", D, seed=9).chmod(0)
    return _ingest(w, w.s("raw"))


@case("ingest: library in a read-only folder", 2,
      r"lib/library\.sqlite: can't write in its folder \(permission denied\)",
      via="unprivileged")
def _(w):
    _darks(w)
    ro = w.folder("lib")
    ro.chmod(0o555)
    w.cleanups.append(lambda: ro.chmod(0o755))
    return _ingest(w, w.s("raw"))


@case("ingest: library file is not SQLite", 2, r"library\.sqlite: not a usable calibration library")
def _(w):
    _darks(w)
    w.text("lib/library.sqlite", "this is no database\n" * 100)
    return _ingest(w, w.s("raw"))


@case("ingest: library path is a folder", 2, r"library\.sqlite' is a directory")
def _(w):
    _darks(w)
    w.folder("lib/library.sqlite")
    return _ingest(w, w.s("raw"))


@case("ingest: library of a newer schema", 2, r"library\.sqlite: schema version 99 is newer")
def _(w):
    import sqlite3
    _darks(w)
    w.folder("lib")
    con = sqlite3.connect(w.p("lib/library.sqlite"))
    con.execute("PRAGMA user_version=99")
    con.close()
    return _ingest(w, w.s("raw"))


@case("ingest: --min-frames 0", 2, r"Invalid value for '--min-frames': 0 is not in the range x>=2")
def _(w):
    _darks(w)
    return ["library", "--library", _lib(w), "ingest", w.s("raw"), "--min-frames", "0"]


@case("ingest: --group with an unknown key", 2, r"Invalid value for --group: unknown grouping key.*colour")
def _(w):
    _darks(w)
    return ["library", "--library", _lib(w), "ingest", w.s("raw"), "--group", "colour"]


@case("ingest: --type not a type", 2, r"Invalid value for '--type': 'sky' is not one of")
def _(w):
    _darks(w)
    return _ingest(w, w.s("raw")) + ["--type", "sky"]


@case("ingest: disk full", 2, r"full/library\.sqlite: (the disk is full|.*larger than this process)")
def _(w):
    _darks(w)
    full = w.full("full")
    return ["library", "--library", str(full / "library.sqlite"), "ingest", w.s("raw"),
            "--no-build"]


@case("ingest: darks of mixed exposures are never one master", 0,
      r"3 frames added.*no group is due", may_write=_LIB_FILES)
def _(w):
    _darks(w, n=2, exposure_s=1.0)
    w.one("raw/d30.fits", D, exposure_s=30.0, seed=30)
    return ["library", "--library", _lib(w), "ingest", w.s("raw"), "--min-frames", "3"]


@case("ingest: a rejected frame", 1, r"skipped .*rej\.fits: was rejected when taken",
      may_write=_LIB_FILES)
def _(w):
    w.edit_header(w.one("raw/rej.fits", F), REJECTED="saturated")
    return _ingest(w, w.s("raw"))


@case("ingest: non-ASCII FILTER is kept", 0, r"1 frames added", may_write=_LIB_FILES)
def _(w):
    p = w.one("raw/f.fits", F, filter="Ha")
    w.raw_header_card(p, "FILTER", "'Hα'".encode())
    return _ingest(w, w.s("raw"))


# == indical calibrate ============================================================================
def _cal(w: World, *args: str) -> list[str]:
    return ["calibrate", "--library", str(w.library()), *args]


@case("calibrate: no library", 2, r"nolib/library\.sqlite: no calibration library there")
def _(w):
    w.light("lights/l.fits")
    return ["calibrate", "--library", w.s("nolib/library.sqlite"), w.s("lights")]


@case("calibrate: library file is not SQLite", 2, r"bad\.sqlite: not a usable calibration")
def _(w):
    w.light("lights/l.fits")
    w.text("bad.sqlite", "garbage\n" * 200)
    return ["calibrate", "--library", w.s("bad.sqlite"), w.s("lights")]


@case("calibrate: light does not exist", 2, r"Path '.*nolight\.fits' does not exist")
def _(w):
    return _cal(w, w.s("nolight.fits"), "-o", w.s("out"))


@case("calibrate: a text file named .fits", 1, r"junk\.fits: not a readable FITS file")
def _(w):
    w.text("lights/junk.fits", "x" * 3000)
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: a truncated light", 1, r"l\.fits: .*(truncated|short)")
def _(w):
    p = w.light("lights/l.fits")
    p.write_bytes(p.read_bytes()[:3000])
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: no matching masters", 1, r"no_masters .*l\.fits.*0 calibrated",
      may_write=("library/status.sqlite",))
def _(w):
    w.light("lights/l.fits", filter="OIII", exposure_s=17.0)
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: -o read-only", 2, r"ro: can't write there \(permission denied\)", via="unprivileged",
      may_write=("library/status.sqlite",))
def _(w):
    w.light("lights/l.fits")
    ro = w.folder("ro")
    w.library()
    ro.chmod(0o555)
    w.cleanups.append(lambda: ro.chmod(0o755))
    return _cal(w, w.s("lights"), "-o", w.s("ro"))


@case("calibrate: -o in a missing folder", 2, r"missing: the folder does not exist")
def _(w):
    w.light("lights/l.fits")
    return _cal(w, w.s("lights"), "-o", w.s("missing/out"))


@case("calibrate: -o is a file", 2, r"afile' is a file")
def _(w):
    w.light("lights/l.fits")
    w.text("afile", "x")
    return _cal(w, w.s("lights"), "-o", w.s("afile"))


@case("calibrate: --bit-depth 17", 2, r"Invalid value for '--bit-depth': 17 is not in the range 1<=x<=16")
def _(w):
    w.light("lights/l.fits")
    return _cal(w, w.s("lights"), "--integer", "--bit-depth", "17")


@case("calibrate: --workers 0", 2, r"Invalid value for '--workers': 0 is not in the range")
def _(w):
    w.light("lights/l.fits")
    return _cal(w, w.s("lights"), "--workers", "0")


@case("calibrate: --exposure-tol negative", 2, r"Invalid value for '--exposure-tol': -1.0 is not in the range x>=0")
def _(w):
    w.light("lights/l.fits")
    return _cal(w, w.s("lights"), "--exposure-tol", "-1")


@case("calibrate: --temperature-tol negative", 2, r"Invalid value for '--temperature-tol': -2.0 is not in the range x>=0")
def _(w):
    w.light("lights/l.fits")
    return _cal(w, w.s("lights"), "--temperature-tol", "-2")


@case("calibrate: --flat-floor above 1", 2, r"Invalid value for '--flat-floor': 1.5 is not in the range 0<=x<1")
def _(w):
    w.light("lights/l.fits")
    return _cal(w, w.s("lights"), "--flat-floor", "1.5")


@case("calibrate: a master file deleted", 1, r"master_dark_.*\.fits: master file is gone.*indical library sweep",
      may_write=("library/status.sqlite",))
def _(w):
    import sqlite3
    w.light("lights/l.fits")
    db = w.library()
    con = sqlite3.connect(db)
    path = con.execute("SELECT path FROM masters WHERE frame_type='dark'").fetchone()[0]
    con.close()
    import os
    os.unlink(path)
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: a master file corrupt", 1, r"master_.*\.fits: master can't be read",
      may_write=("library/status.sqlite",))
def _(w):
    import sqlite3
    from pathlib import Path
    w.light("lights/l.fits")
    db = w.library()
    con = sqlite3.connect(db)
    path = con.execute("SELECT path FROM masters WHERE frame_type='flat'").fetchone()[0]
    con.close()
    Path(path).write_bytes(Path(path).read_bytes()[:3000])
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: a light without EXPTIME", 1, r"failed .*l\.fits: no exposure time \(EXPTIME or EXPOSURE\)",
      may_write=("library/status.sqlite",))
def _(w):
    w.edit_header(w.light("lights/l.fits"), EXPTIME=None, EXPOSURE=None)
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: a light with EXPTIME = -30", 1, r"failed .*l\.fits: EXPTIME = -30(\.0)? is negative",
      may_write=("library/status.sqlite",))
def _(w):
    w.edit_header(w.light("lights/l.fits"), EXPTIME=-30.0, EXPOSURE=None)
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: no writable cache folder", 0, r"1 calibrated",
      may_write=("library/status.sqlite", "out/*"), via="subprocess",
      env={"XDG_CACHE_HOME": "/proc/indical-no-cache", "NUMBA_CACHE_DIR": "",
           "HOME": "/proc/indical-no-home"})
def _(w):
    w.light("lights/l.fits")
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: disk full", 1, r"failed .*l\.fits: output not written: .*l_cal\.fits: (the disk is full|.*larger than this process)",
      may_write=("library/status.sqlite",))
def _(w):
    w.light("lights/l.fits")
    w.library()
    full = w.full("full")
    return _cal(w, w.s("lights"), "-o", str(full))


@case("calibrate: unreadable light", 1, r"failed .*l\.fits: can't be read \(Permission denied\)",
      may_write=("library/status.sqlite",), via="unprivileged")
def _(w):
    w.light("lights/l.fits").chmod(0)
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: a master flat given as light", 1, r"skipped .*mf\.fits: a master or stack .*not a raw frame; add it with `indical library import`",
      may_write=("library/status.sqlite",))
def _(w):
    w.edit_header(w.one("lights/mf.fits", F), IMAGETYP="Master Flat")
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: a dark given as light", 1, r"skipped .*d\.fits: not a light frame \(dark\)",
      may_write=("library/status.sqlite",))
def _(w):
    w.one("lights/d.fits", D, exposure_s=30.0)
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: unknown IMAGETYP", 1, r"failed .*odd\.fits: no usable header: unknown frame type \(IMAGETYP = 'Thing'\); if it is a light, say so with --assume-light",
      may_write=("library/status.sqlite",))
def _(w):
    w.edit_header(w.light("lights/odd.fits"), IMAGETYP="Thing")
    return _cal(w, w.s("lights"), "-o", w.s("out"))


@case("calibrate: an empty folder", 1, r"no FITS files in .*empty")
def _(w):
    w.folder("empty")
    return _cal(w, w.s("empty"))


# == indical bpm ==================================================================================
@case("bpm: no library", 2, r"nolib/library\.sqlite: no calibration library there")
def _(w):
    return ["bpm", "--library", w.s("nolib/library.sqlite")]


@case("bpm: library is not SQLite", 2, r"bad\.sqlite: not a usable calibration library")
def _(w):
    w.text("bad.sqlite", "x" * 5000)
    return ["bpm", "--library", w.s("bad.sqlite")]


@case("bpm: no master darks or flats", 1, r"no master darks or flats",
      may_write=("lib/status.sqlite",))
def _(w):
    from indical.calib.library import CalibrationLibrary
    from indical.calib.status import StatusStore
    with CalibrationLibrary(w.p("lib/library.sqlite")), StatusStore(w.p("lib/library.sqlite")):
        pass
    return ["bpm", "--library", w.s("lib/library.sqlite")]


@case("bpm: --hot-sigma negative", 2, r"Invalid value for '--hot-sigma': -3.0 is not in the range x>0")
def _(w):
    return ["bpm", "--library", str(w.library()), "--hot-sigma", "-3"]


@case("bpm: --cold-fraction above 1", 2, r"Invalid value for '--cold-fraction': 2.0 is not in the range 0<x<1")
def _(w):
    return ["bpm", "--library", str(w.library()), "--cold-fraction", "2"]


@case("bpm: --dead-fraction above --cold-fraction", 2, r"--dead-fraction.*--cold-fraction")
def _(w):
    return ["bpm", "--library", str(w.library()), "--dead-fraction", "0.9",
            "--cold-fraction", "0.5"]


@case("bpm: a master dark deleted", 2, r"master_dark_.*\.fits: master file is gone")
def _(w):
    import os
    import sqlite3
    db = w.library()
    con = sqlite3.connect(db)
    path = con.execute("SELECT path FROM masters WHERE frame_type='dark'").fetchone()[0]
    con.close()
    os.unlink(path)
    return ["bpm", "--library", str(db)]


@case("bpm: a master flat corrupt", 2, r"master_.*\.fits: master can't be read")
def _(w):
    import sqlite3
    from pathlib import Path
    db = w.library()
    con = sqlite3.connect(db)
    path = con.execute("SELECT path FROM masters WHERE frame_type='flat'").fetchone()[0]
    con.close()
    Path(path).write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    return ["bpm", "--library", str(db)]


@case("bpm: masters folder read-only", 2, r"library/masters/bpm_.*\.fits: permission denied; fix the permissions",
      via="unprivileged")
def _(w):
    db = w.library()
    masters = db.parent / "masters"
    masters.chmod(0o555)
    w.cleanups.append(lambda: masters.chmod(0o755))
    return ["bpm", "--library", str(db)]


@case("bpm: library of a newer schema", 2, r"schema version 99 is newer")
def _(w):
    import sqlite3
    w.folder("lib")
    con = sqlite3.connect(w.p("lib/library.sqlite"))
    con.execute("PRAGMA user_version=99")
    con.close()
    return ["bpm", "--library", w.s("lib/library.sqlite")]


# == indical needs ================================================================================
@case("needs: no library", 2, r"nolib/library\.sqlite: no calibration library there")
def _(w):
    return ["needs", "--library", w.s("nolib/library.sqlite")]


@case("needs: library is not SQLite", 2, r"bad\.sqlite: not a usable calibration library")
def _(w):
    w.text("bad.sqlite", "x" * 5000)
    return ["needs", "--library", w.s("bad.sqlite")]


@case("needs: library path is a folder", 2, r"libdir' is a directory")
def _(w):
    w.folder("libdir")
    return ["needs", "--library", w.s("libdir")]


@case("needs: --min-frames 0", 2, r"Invalid value for '--min-frames': 0 is not in the range x>=1")
def _(w):
    return ["needs", "--library", str(w.library()), "--min-frames", "0"]


@case("needs: --days negative", 2, r"Invalid value for '--days': -3.0 is not in the range x>0")
def _(w):
    return ["needs", "--library", str(w.library()), "--days", "-3"]


@case("needs: --days abc", 2, r"Invalid value for '--days': 'abc' is not a valid float")
def _(w):
    return ["needs", "--library", str(w.library()), "--days", "abc"]


@case("needs: --temperature-tol negative", 2, r"Invalid value for '--temperature-tol': -1.0 is not in the range x>=0")
def _(w):
    return ["needs", "--library", str(w.library()), "--temperature-tol", "-1"]


@case("needs: library of a newer schema", 2, r"schema version 99 is newer")
def _(w):
    import sqlite3
    w.folder("lib")
    con = sqlite3.connect(w.p("lib/library.sqlite"))
    con.execute("PRAGMA user_version=99")
    con.close()
    return ["needs", "--library", w.s("lib/library.sqlite")]


@case("needs: unknown option", 2, r"No such option")
def _(w):
    return ["needs", "--library", str(w.library()), "--filters", "L"]


# == indical report ===============================================================================
def _report(w: World, *args: str) -> list[str]:
    return ["report", "--library", str(w.library()), *args]


@case("report: no library", 2, r"nolib/library\.sqlite: no calibration library there")
def _(w):
    return ["report", "--library", w.s("nolib/library.sqlite"), "-o", w.s("rep")]


@case("report: a malformed log line", 0,
      r"warning: .*exposures\.jsonl: line 1: not an exposure entry \(and 1 more lines\); those lines are left out",
      may_write=("rep/index.html", "rep/png/*"))
def _(w):
    w.text("logs/exposures.jsonl", '{"event": "start", "sequence": "x"}\n{"event": \n')
    return _report(w, "-o", w.s("rep"), "--logs", w.s("logs"))


@case("report: a log line of the wrong shape", 0,
      r"warning: .*exposures\.jsonl: line 1: not an exposure entry;",
      may_write=("rep/index.html", "rep/png/*"))
def _(w):
    w.text("logs/exposures.jsonl", '[1, 2, 3]\n')
    return _report(w, "-o", w.s("rep"), "--logs", w.s("logs"))


@case("report: a log line with a wrong type", 0,
      r"warning: .*exposures\.jsonl: line 1: exposure = 'long' is not a number",
      may_write=("rep/index.html", "rep/png/*"))
def _(w):
    w.text("logs/exposures.jsonl",
           '{"kind": "flat", "exposure": "long", "level": "bright"}\n')
    return _report(w, "-o", w.s("rep"), "--logs", w.s("logs"))


@case("report: a log file of binary junk", 0,
      r"warning: .*exposures\.jsonl: line 1: not JSON",
      may_write=("rep/index.html", "rep/png/*"))
def _(w):
    w.text("logs/exposures.jsonl", bytes(range(256)) * 4)
    return _report(w, "-o", w.s("rep"), "--logs", w.s("logs"))


@case("report: --logs folder missing", 2, r"Path '.*nologs' does not exist")
def _(w):
    return _report(w, "-o", w.s("rep"), "--logs", w.s("nologs"))


@case("report: -o read-only", 2, r"ro: can't write there \(permission denied\)", via="unprivileged")
def _(w):
    w.library()
    ro = w.folder("ro")
    ro.chmod(0o555)
    w.cleanups.append(lambda: ro.chmod(0o755))
    return _report(w, "-o", w.s("ro/rep"))


@case("report: -o in a missing folder", 2, r"missing: the folder does not exist")
def _(w):
    return _report(w, "-o", w.s("missing/rep"))


@case("report: -o is a file", 2, r"afile' is a file")
def _(w):
    w.text("afile", "x")
    return _report(w, "-o", w.s("afile"))


@case("report: --min-frames 0", 2, r"Invalid value for '--min-frames': 0 is not in the range x>=1")
def _(w):
    return _report(w, "-o", w.s("rep"), "--min-frames", "0")


@case("report: disk full", 2, r"full/rep.*: (the disk is full|.*larger than this process)")
def _(w):
    w.library()
    full = w.full("full")
    return _report(w, "-o", str(full / "rep"))


# == indical rig check ============================================================================
@case("rig: file missing", 2, r"none\.toml: file: no such rig file")
def _(w):
    return ["rig", "check", w.s("none.toml")]


@case("rig: not TOML", 2, r"r\.toml: TOML: not valid TOML")
def _(w):
    w.text("r.toml", "[camera\ndriver = sim\n")
    return ["rig", "check", w.s("r.toml")]


@case("rig: unknown table", 2, r"r\.toml: \[telescope\]: unknown table")
def _(w):
    w.text("r.toml", '[telescope]\ndriver = "sim"\n')
    return ["rig", "check", w.s("r.toml")]


@case("rig: unknown driver", 2, r"r\.toml: \[camera\] driver: no driver named 'zwo'")
def _(w):
    w.text("r.toml", '[camera]\ndriver = "zwo"\n')
    return ["rig", "check", w.s("r.toml")]


@case("rig: driver missing", 2, r"r\.toml: \[camera\] driver: missing")
def _(w):
    w.text("r.toml", '[camera]\nwidth = 100\n')
    return ["rig", "check", w.s("r.toml")]


@case("rig: wrong type", 2, r"\[camera\] width: expected a whole number")
def _(w):
    w.text("r.toml", '[camera]\ndriver = "sim"\nwidth = "wide"\n')
    return ["rig", "check", w.s("r.toml")]


@case("rig: unknown key", 2, r"\[camera\] widht: unknown key; did you mean 'width'")
def _(w):
    w.text("r.toml", '[camera]\ndriver = "sim"\nwidht = 100\n')
    return ["rig", "check", w.s("r.toml")]


@case("rig: site latitude out of range", 2, r"\[site\] latitude: must be between")
def _(w):
    w.text("r.toml", '[site]\nlatitude = 123.0\nlongitude = 5.0\n')
    return ["rig", "check", w.s("r.toml")]


@case("rig: not UTF-8", 2, r"r\.toml: file: can't read it")
def _(w):
    w.text("r.toml", b"[camera]\ndriver = \"sim\xff\xfe\"\n")
    return ["rig", "check", w.s("r.toml")]


@case("rig: a folder", 2, r"rigdir' is a directory")
def _(w):
    w.folder("rigdir")
    return ["rig", "check", w.s("rigdir")]


@case("rig: a role given as a value", 2, r"r\.toml: camera: must be a table")
def _(w):
    w.text("r.toml", 'camera = "sim"\n')
    return ["rig", "check", w.s("r.toml")]


@case("rig: sensor not ccd or cmos", 2, r"\[camera\] sensor: ")
def _(w):
    w.text("r.toml", '[camera]\ndriver = "sim"\nsensor = "film"\n')
    return ["rig", "check", w.s("r.toml")]


@case("rig: unreadable file", 2, r"r\.toml' is not readable", via="unprivileged")
def _(w):
    w.text("r.toml", '[camera]\ndriver = "sim"\n').chmod(0)
    return ["rig", "check", w.s("r.toml")]


# == indical run ==================================================================================
_SEQ = '''
from indical.sequence import Target
FLATS_PER_FILTER = 20
TARGET = Target.fraction(0.5, tolerance=0.1)
EXPOSURE_S = 1.0
FILTERS = None
NAME = "flats"
COVER_ON_EXIT = "open"

def run(obs):
    raise RuntimeError("the corpus never gets this far")
'''


def _seq(w: World) -> str:
    return str(w.text("seq.py", _SEQ))


def _run_cmd(w: World, *args: str) -> list[str]:
    return ["run", _seq(w), "-o", w.s("frames"), "--store", w.s("trained.json"), *args]


@case("run: sequence file missing", 2, r"noseq\.py: no such sequence file")
def _(w):
    return ["run", w.s("noseq.py"), "-o", w.s("frames")]


@case("run: sequence with a syntax error", 2, r"bad\.py: can't load it \(SyntaxError")
def _(w):
    w.text("bad.py", "def run(obs)\n    pass\n")
    return ["run", w.s("bad.py"), "-o", w.s("frames")]


@case("run: sequence without run()", 2, r"norun\.py: has no run\(obs\) function")
def _(w):
    w.text("norun.py", "X = 1\n")
    return ["run", w.s("norun.py"), "-o", w.s("frames")]


@case("run: --set without =", 2, r"--set 'FLATS_PER_FILTER': expected NAME=VALUE")
def _(w):
    return _run_cmd(w, "--set", "FLATS_PER_FILTER")


@case("run: --set unknown setting", 2, r"no setting 'FLATS' to change")
def _(w):
    return _run_cmd(w, "--set", "FLATS=5")


@case("run: --set FLATS_PER_FILTER=abc", 2,
      r"--set FLATS_PER_FILTER=abc: FLATS_PER_FILTER needs a whole number above 0")
def _(w):
    return _run_cmd(w, "--set", "FLATS_PER_FILTER=abc")


@case("run: --set FLATS_PER_FILTER=2.5", 2,
      r"--set FLATS_PER_FILTER=2\.5: FLATS_PER_FILTER needs a whole number above 0")
def _(w):
    return _run_cmd(w, "--set", "FLATS_PER_FILTER=2.5")


@case("run: --set FLATS_PER_FILTER=-3", 2,
      r"--set FLATS_PER_FILTER=-3: FLATS_PER_FILTER needs a whole number above 0")
def _(w):
    return _run_cmd(w, "--set", "FLATS_PER_FILTER=-3")


@case("run: --set FLATS_PER_FILTER=true", 2, r"FLATS_PER_FILTER needs a whole number above 0")
def _(w):
    return _run_cmd(w, "--set", "FLATS_PER_FILTER=True")


@case("run: --set TARGET=0.5", 2, r"--set TARGET=0\.5: TARGET needs a Target")
def _(w):
    return _run_cmd(w, "--set", "TARGET=0.5")


@case("run: --set EXPOSURE_S=abc", 2, r"--set EXPOSURE_S=abc: EXPOSURE_S needs a number above 0")
def _(w):
    return _run_cmd(w, "--set", "EXPOSURE_S=abc")


@case("run: --set EXPOSURE_S=-1", 2, r"EXPOSURE_S needs a number above 0")
def _(w):
    return _run_cmd(w, "--set", "EXPOSURE_S=-1")


@case("run: --set EXPOSURE_S=nan", 2, r"EXPOSURE_S needs a number above 0")
def _(w):
    return _run_cmd(w, "--set", "EXPOSURE_S=nan")


@case("run: --set NAME=5", 2, r"NAME needs a string")
def _(w):
    return _run_cmd(w, "--set", "NAME=[1]")


@case("run: --set FILTERS=5", 2, r"--set FILTERS=5: FILTERS needs a list of names like \['L', 'R'\]")
def _(w):
    return _run_cmd(w, "--set", "FILTERS=5")


@case("run: --set COVER_ON_EXIT=ajar", 2, r"COVER_ON_EXIT must be 'open', 'closed' or 'leave'")
def _(w):
    return _run_cmd(w, "--set", "COVER_ON_EXIT='ajar'")


@case("run: -o read-only", 2, r"ro: can't write there \(permission denied\)", via="unprivileged")
def _(w):
    ro = w.folder("ro")
    ro.chmod(0o555)
    w.cleanups.append(lambda: ro.chmod(0o755))
    return ["run", _seq(w), "-o", w.s("ro/frames"), "--store", w.s("trained.json")]


@case("run: -o in a missing folder", 2, r"missing: the folder does not exist")
def _(w):
    return ["run", _seq(w), "-o", w.s("missing/frames"), "--store", w.s("trained.json")]


@case("run: -o is a file", 2, r"afile' is a file")
def _(w):
    w.text("afile", "x")
    return ["run", _seq(w), "-o", w.s("afile"), "--store", w.s("trained.json")]


@case("run: --log into a read-only folder", 2, r"ro: can't write there \(permission denied\)",
      via="unprivileged")
def _(w):
    ro = w.folder("ro")
    ro.chmod(0o555)
    w.cleanups.append(lambda: ro.chmod(0o755))
    return _run_cmd(w, "--log", w.s("ro/x.jsonl"))


@case("run: --log into a missing folder", 2, r"nolog: the folder does not exist")
def _(w):
    return _run_cmd(w, "--log", w.s("nolog/x.jsonl"))


@case("run: --log is a folder", 2, r"logdir' is a directory")
def _(w):
    w.folder("logdir")
    return _run_cmd(w, "--log", w.s("logdir"))


@case("run: --rig missing", 2, r"norig\.toml: file: no such rig file")
def _(w):
    return _run_cmd(w, "--rig", w.s("norig.toml"))


@case("run: --rig not TOML", 2, r"r\.toml: TOML: not valid TOML")
def _(w):
    w.text("r.toml", "[[[")
    return _run_cmd(w, "--rig", w.s("r.toml"))


@case("run: --store is a folder", 2, r"storedir' is a directory")
def _(w):
    w.folder("storedir")
    return ["run", _seq(w), "-o", w.s("frames"), "--store", w.s("storedir")]


@case("run: --store is not a database", 2, r"trained\.json: can't open the trained-settings store")
def _(w):
    w.text("trained.json", "{{{{")
    return _run_cmd(w)


@case("run: disk full", 2, r"error: .*full/frames.*: (the disk is full|.*larger than this process)",
      may_write=("trained.json", "full/frames/*", "full/frames/*/*"))
def _(w):
    w.text("shoot.py", "from indical.frame import FrameType\n\n"
                       "def run(obs):\n"
                       "    obs.save(obs.expose(0.01, FrameType.DARK))\n")
    full = w.full("full")
    return ["run", w.s("shoot.py"), "-o", str(full / "frames"), "--store", w.s("trained.json")]


@case("run: the sequence raises", 2, r"error: the corpus never gets this far",
      may_write=("frames/*", "trained.json"))
def _(w):
    return _run_cmd(w)
