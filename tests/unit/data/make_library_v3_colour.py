"""How library_v3_colour.sql was made: run with indical cd17a2b (the last code before masters
had a Bayer pattern, schema version 3) first on the path, e.g.
    git archive cd17a2b | tar -x -C /tmp/old && cp indical/calib/combine/_native*.so \
        /tmp/old/indical/calib/combine/ && PYTHONPATH=/tmp/old python this.py /tmp/gen
It ingests RGGB flats and darks, builds their masters with the library's own builder, imports
two colour masters made elsewhere (the file of the second is then deleted), and dumps the
database with paths under /data."""

import sqlite3
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

import indical
from indical.calib.autobuild import AutoBuildPolicy, build_group, due_groups
from indical.calib.library import CalibrationLibrary
from indical.calib.master_import import import_master

root = Path(sys.argv[1])
raw, lib_path = root / "raw", root / "lib" / "library.sqlite"
raw.mkdir(parents=True)
rng = np.random.default_rng(3)
common = {"INSTRUME": "Sim Cam", "GAIN": 100, "OFFSET": 10, "XBINNING": 1, "YBINNING": 1,
          "CCD-TEMP": -10.0, "SET-TEMP": -10.0, "BAYERPAT": "RGGB", "XBAYROFF": 0,
          "YBAYROFF": 0}
cast = np.tile(np.array([[1.0, 0.55], [0.55, 0.25]]), (12, 16))   # 24 x 32, RGGB
for i in range(3):
    for kind, exp, level in (("Flat Field", 1.5, 20000.0), ("Dark Frame", 60.0, 0.0)):
        data = 1000 + level * cast + rng.normal(0, 5, cast.shape)
        h = fits.Header({**common, "IMAGETYP": kind, "EXPTIME": exp, "FILTER": "L",
                         "DATE-OBS": f"2026-11-20T22:0{i}:00"})
        name = f"{kind.split()[0].lower()}_{i}.fits"
        fits.PrimaryHDU(np.round(data).astype(np.uint16), h).writeto(raw / name)
with CalibrationLibrary(lib_path) as lib:
    lib.ingest(sorted(raw.iterdir()))
    policy = AutoBuildPolicy(min_frames_for_master=3, flat_precal_from_library=False)
    for group in due_groups(lib, policy):
        build_group(lib, group, policy)
    for n, (pattern, filt) in enumerate((("GRBG", "R"), ("BGGR", "G"))):
        h = fits.Header({**common, "IMAGETYP": "Master Flat", "EXPTIME": 2.0, "FILTER": filt,
                         "BAYERPAT": pattern, "STACKCNT": 20, "PROGRAM": "Siril 1.0.6"})
        path = root / f"siril_flat_{n}.fits"
        fits.PrimaryHDU((cast * 0.5).astype(np.float32), h).writeto(path)
        done = import_master(lib, path)
        if n == 1:
            Path(done.master.path).unlink()    # the file of this one is gone since
con = sqlite3.connect(lib_path)
text = "\n".join(con.iterdump()).replace(str(root.resolve()), "/data")
con.close()
print(f"-- made by indical {indical.__version__}")
print(text)
