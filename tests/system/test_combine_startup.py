"""Start-up of the combine engine in a fresh process: with the C kernel numba is not imported
at all; on the numba path its BLAS probe (an import of scipy.linalg) is skipped while the
kernels load, and numba is left as it was afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

from indical.calib.combine import CombineInput, CombineOptions, combine_files, native
from indical.frame import FrameType
from indical.testing.frames import write_synthetic

_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numba.np.linalg as nb_linalg
    original = nb_linalg.ensure_blas
    from indical.calib.combine import CombineInput, CombineOptions, combine_files
    result = combine_files(CombineInput([Path(p) for p in sys.argv[2:]],
                                        CombineOptions(method="sigma")))
    import numba.np.arraymath as arraymath
    assert nb_linalg.ensure_blas is original, "numba's linalg probe was not restored"
    assert arraymath.ensure_blas is original, "numba's arraymath probe was not restored"
    print("scipy.linalg imported:", "scipy.linalg" in sys.modules)
    import numpy as np
    np.save(sys.argv[1], result.data)
""")


def test_fresh_process_skips_blas_probe_and_combines_the_same(tmp_path):
    rng = np.random.default_rng(3)
    paths = [write_synthetic(tmp_path / f"b{i}.fits", FrameType.BIAS,
                             data=rng.integers(900, 1100, (12, 16)).astype(np.uint16), seed=i)
             for i in range(9)]
    out = tmp_path / "child.npy"
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(out), *map(str, paths)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, INDICAL_NATIVE="0"))
    assert proc.returncode == 0, proc.stderr
    assert "scipy.linalg imported: False" in proc.stdout
    here = combine_files(CombineInput(paths, CombineOptions(method="sigma"))).data
    np.testing.assert_array_equal(np.load(out), here)


def test_engine_does_not_import_numba_on_the_native_path(tmp_path):
    paths = [write_synthetic(tmp_path / f"b{i}.fits", FrameType.BIAS, shape=(9, 20), seed=i)
             for i in range(5)]
    native.load()  # built in this session's cache, which the child shares
    child = ("import sys; from pathlib import Path\n"
             "from indical.calib.combine import CombineInput, combine_files\n"
             "combine_files(CombineInput([Path(p) for p in sys.argv[1:]]))\n"
             "print('numba' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", child, *map(str, paths)], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, INDICAL_NATIVE="1"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_master_auto_on_16_frames_combines_in_c_without_numba(tmp_path):
    """`--combine auto` picks winsorized clipping for 15 frames or more; the C kernel does it,
    so the command never imports numba (its import and cache loading cost ~0.4 s)."""
    from astropy.io import fits

    paths = [write_synthetic(tmp_path / f"d{i:02d}.fits", FrameType.DARK, shape=(20, 150), seed=i,
                             noise_adu=30.0) for i in range(16)]
    native.load()  # built in this session's cache, which the child shares
    out = tmp_path / "master.fits"
    child = ("import sys\nfrom indical.cli import main\ncode = 0\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
             "print('numba imported:', 'numba' in sys.modules)\nsys.exit(code)\n")
    run = subprocess.run([sys.executable, "-c", child, "master", *map(str, paths), "-o", str(out),
                          "--combine", "auto"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, INDICAL_NATIVE="1"))
    assert run.returncode == 0, run.stderr
    assert "numba imported: False" in run.stdout
    header = fits.getheader(out)
    assert "winsorized" in repr(header).lower()
    expect = combine_files(CombineInput(paths, CombineOptions(method="winsorized"))).data
    np.testing.assert_array_equal(fits.getdata(out), expect)
