"""indical on an indiserver it shares with an imaging program. A second client, indi-bin's
`indi_setprop`/`indi_getprop`, plays the imaging program on the same real server: it leaves the
camera saved locally, compressed, on dark frames, binned 2x2 on a sub-frame, and exposes. indical
must change nothing when it only looks, put back everything it changed, wait for the other
client's exposure, take its frames in the shape asked, and fail fast when the server is down."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from astropy.io import fits

from indi_helpers import open_indi_rig, rig_for, start_server
from indical.errors import DeviceError
from indical.frame import Binning, FrameType
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sequence.trained import TrainedStore
from indical.simulators.indi.config import CAMERA_NAME, FLIPFLAT_NAME
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT, free_port
from indical.sinks import FitsFolderSink

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WHEEL = "Filter Simulator"

SIMS = """\
[camera]
width = 320
height = 240
readout_s = 0.05
filter_wheel = "Filter Simulator"
max_binning = 4

[flipflat]
travel_s = 0.2
max_flux_e_per_s = 400000.0
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("shared"),
                          [OUR_CCD, OUR_FLIPFLAT, "indi_simulator_wheel"], SIMS)
    server.wait_for_devices([CAMERA_NAME, FLIPFLAT_NAME, WHEEL])
    yield server
    server.stop()


def setprop(server, *assignments: str) -> None:
    """The other client changes properties, as an imaging program would."""
    for a in assignments:
        run = subprocess.run(["indi_setprop", "-p", str(server.port), a], timeout=10,
                             capture_output=True, text=True)
        assert run.returncode == 0, (a, run.stdout, run.stderr)


def getprops(server, device: str, *names: str) -> dict[str, str]:
    """'PROPERTY.ELEMENT' -> value as the other client reads them."""
    run = subprocess.run(["indi_getprop", "-p", str(server.port), "-t", "1",
                          *(f"{device}.{name}.*" for name in names)],
                         capture_output=True, text=True, timeout=10)
    out: dict[str, str] = {}
    for line in run.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key.split(".", 1)[1]] = value.strip()
    return out


def wait_settled(server, device: str, name: str, timeout_s: float = 5.0) -> None:
    """Wait until a property the other client set is no longer Busy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = subprocess.run(["indi_getprop", "-p", str(server.port), "-t", "1", "-1",
                              f"{device}.{name}._STATE"], capture_output=True, text=True)
        if "Busy" not in run.stdout:
            return
        time.sleep(0.1)


SHARED = ("UPLOAD_MODE", "UPLOAD_SETTINGS", "CCD_COMPRESSION", "CCD_FRAME_TYPE", "CCD_BINNING",
          "CCD_FRAME", "CCD_GAIN", "CCD_OFFSET")


def imaging_program_settings(server, upload_dir: Path) -> dict[str, str]:
    """What the imaging program leaves set; returns them as it reads them back."""
    cam = CAMERA_NAME
    # it has connected its devices (the stock wheel defines FILTER_SLOT only once connected)
    setprop(server, *(f"{d}.CONNECTION.CONNECT=On" for d in (cam, FLIPFLAT_NAME, WHEEL)))
    deadline = time.monotonic() + 5
    while not getprops(server, WHEEL, "FILTER_SLOT") and time.monotonic() < deadline:
        time.sleep(0.1)
    setprop(server, f"{cam}.UPLOAD_SETTINGS.UPLOAD_DIR;UPLOAD_PREFIX={upload_dir};LIGHT_XXX",
            f"{cam}.UPLOAD_MODE.UPLOAD_LOCAL=On", f"{cam}.CCD_COMPRESSION.INDI_ENABLED=On",
            f"{cam}.CCD_FRAME_TYPE.FRAME_DARK=On", f"{cam}.CCD_BINNING.HOR_BIN;VER_BIN=2;2",
            f"{cam}.CCD_FRAME.X;Y;WIDTH;HEIGHT=40;30;200;150", f"{cam}.CCD_GAIN.GAIN=120",
            f"{cam}.CCD_OFFSET.OFFSET=30", f"{FLIPFLAT_NAME}.FLAT_LIGHT_INTENSITY."
            "FLAT_LIGHT_INTENSITY_VALUE=17", f"{WHEEL}.FILTER_SLOT.FILTER_SLOT_VALUE=2")
    wait_settled(server, WHEEL, "FILTER_SLOT")
    before = {**getprops(server, cam, *SHARED),
              **getprops(server, FLIPFLAT_NAME, "FLAT_LIGHT_INTENSITY"),
              **getprops(server, WHEEL, "FILTER_SLOT")}
    assert before["UPLOAD_MODE.UPLOAD_LOCAL"] == "On"
    assert before["CCD_COMPRESSION.INDI_ENABLED"] == "On"
    assert float(before["CCD_BINNING.HOR_BIN"]) == 2 and float(before["CCD_FRAME.WIDTH"]) == 200
    assert float(before["FILTER_SLOT.FILTER_SLOT_VALUE"]) == 2
    return before


def read_back(server) -> dict[str, str]:
    return {**getprops(server, CAMERA_NAME, *SHARED),
            **getprops(server, FLIPFLAT_NAME, "FLAT_LIGHT_INTENSITY"),
            **getprops(server, WHEEL, "FILTER_SLOT")}


def rig_text(server, **extra) -> str:
    return rig_for(server.address, {"camera": CAMERA_NAME, "panel": FLIPFLAT_NAME,
                                    "cover": FLIPFLAT_NAME, "filter_wheel": WHEEL}, **extra)


def test_rig_check_changes_nothing(server, tmp_path):
    before = imaging_program_settings(server, tmp_path / "imaging")
    rig = tmp_path / "rig.toml"
    rig.write_text(rig_text(server))
    run = subprocess.run([str(BIN / "indical"), "rig", "check", str(rig)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all roles reachable" in run.stdout
    assert read_back(server) == before


def test_flats_run_puts_everything_back_and_takes_full_frames(server, tmp_path):
    before = imaging_program_settings(server, tmp_path / "imaging")
    out = tmp_path / "frames"
    spec = parse_rig(rig_text(server), "shared rig")
    with open_rig(spec) as rig:
        result = run_sequence(ROOT / "sequences" / "panel_flats.py", rig, FitsFolderSink(out),
                              log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "trained.sqlite"),
                              overrides={"FILTERS": ["Red"], "FLATS_PER_FILTER": 2,
                                         "DARK_FLATS_PER_EXPOSURE": 1, "EXPOSURE_S": 0.1})
    assert result.error is None and not result.interrupted, result.error
    # every shared setting reads back as the imaging program left it, compression still on
    assert read_back(server) == before
    frames = sorted(out.rglob("*.fits"))
    assert frames
    for path in frames:
        with fits.open(path) as hdul:
            h, data = hdul[0].header, hdul[0].data
        # full frame at 1x1 whatever the other client left, compressed frames read as they came
        assert data.shape == (240, 320), path
        assert (h["XBINNING"], h["YBINNING"], h["XORGSUBF"], h["YORGSUBF"]) == (1, 1, 0, 0)
    # nothing of indical's landed in the imaging program's folder
    assert not (tmp_path / "imaging").exists() or not list((tmp_path / "imaging").iterdir())


def test_frames_in_the_shape_asked_and_a_wrong_size_is_an_error(server, tmp_path):
    imaging_program_settings(server, tmp_path / "imaging")
    with open_indi_rig(server.address, {"camera": CAMERA_NAME}) as rig:
        camera = rig.camera
        camera.set_binning(Binning(2, 2))
        frame = camera.expose(0.05, FrameType.FLAT)
        assert frame.data.shape == (120, 160)
        assert frame.meta.binning == Binning(2, 2)
        assert (frame.meta.extra["XORGSUBF"], frame.meta.extra["YORGSUBF"]) == (0, 0)
        from indical.frame import Region
        camera.set_region(Region(64, 32, 128, 96))
        frame = camera.expose(0.05, FrameType.FLAT)
        assert frame.data.shape == (48, 64)
        assert (frame.meta.extra["XORGSUBF"], frame.meta.extra["YORGSUBF"]) == (32, 16)
        with pytest.raises(ValueError, match="outside"):
            camera.set_region(Region(300, 0, 100, 100))


def test_waits_for_the_other_clients_exposure_which_completes(server, tmp_path):
    saved = tmp_path / "imaging"
    imaging_program_settings(server, saved)
    with open_indi_rig(server.address, {"camera": CAMERA_NAME}) as rig:
        rig.camera.info()
        setprop(server, f"{CAMERA_NAME}.CCD_EXPOSURE.CCD_EXPOSURE_VALUE=3")
        time.sleep(0.3)
        t0 = time.monotonic()
        frame = rig.camera.expose(0.1, FrameType.FLAT)
        waited = time.monotonic() - t0
    assert frame.data.shape == (240, 320)
    assert waited > 2.0, f"indical exposed after {waited:.1f} s, during the other exposure"
    # the other client's 3 s exposure ran to the end: its frame is in its own folder
    files = list(saved.glob("LIGHT_*.fits"))
    assert len(files) == 1, files
    with fits.open(files[0]) as hdul:
        assert hdul[-1].header["EXPTIME"] == pytest.approx(3.0)
        assert hdul[-1].data.shape == (75, 100)     # its 200x150 sub-frame at 2x2


def test_refuses_when_the_other_client_keeps_exposing(server, tmp_path):
    saved = tmp_path / "imaging"
    imaging_program_settings(server, saved)
    with open_indi_rig(server.address, {"camera": CAMERA_NAME, "panel": FLIPFLAT_NAME},
                       busy_timeout_s=1.0) as rig:
        rig.camera.info()
        setprop(server, f"{CAMERA_NAME}.CCD_EXPOSURE.CCD_EXPOSURE_VALUE=3")
        time.sleep(0.3)
        with pytest.raises(DeviceError, match="camera busy: another client is exposing"):
            rig.camera.expose(0.1, FrameType.FLAT)
        with pytest.raises(DeviceError, match="camera busy: another client is exposing"):
            rig.panel.on()
    deadline = time.monotonic() + 10
    while not list(saved.glob("LIGHT_*.fits")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(list(saved.glob("LIGHT_*.fits"))) == 1   # its exposure was not aborted


def test_the_other_clients_frames_are_not_taken_for_indicals(server, tmp_path):
    """With frames sent to clients, the other client's frame reaches indical too."""
    imaging_program_settings(server, tmp_path / "imaging")
    setprop(server, f"{CAMERA_NAME}.UPLOAD_MODE.UPLOAD_CLIENT=On")
    with open_indi_rig(server.address, {"camera": CAMERA_NAME}) as rig:
        rig.camera.info()
        frames = rig.camera._channel
        frames_before = frames.latest_serial
        setprop(server, f"{CAMERA_NAME}.CCD_EXPOSURE.CCD_EXPOSURE_VALUE=1.5")
        time.sleep(0.2)
        frame = rig.camera.expose(0.1, FrameType.FLAT)
        assert frame.data.shape == (240, 320)         # the other one was 100x75
        assert frames.latest_serial == frames_before + 2   # its frame came, and was passed


def test_refused_connection_is_reported_fast_and_not_retried(tmp_path):
    import indical.commands.rig  # noqa: F401  (time the connecting, not the first imports)
    import indical.drivers.indi.plugin  # noqa: F401
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="refused"):
        open_indi_rig(address, {"camera": CAMERA_NAME})
    assert time.monotonic() - t0 < 1.0
    # rig check: four roles on the dead server, one attempt
    rig = tmp_path / "rig.toml"
    rig.write_text(rig_for(address, {"camera": CAMERA_NAME, "panel": FLIPFLAT_NAME,
                                     "cover": FLIPFLAT_NAME, "filter_wheel": WHEEL}))
    from click.testing import CliRunner

    from indical.cli import main
    t0 = time.monotonic()
    result = CliRunner().invoke(main, ["rig", "check", str(rig)])
    elapsed = time.monotonic() - t0
    assert result.exit_code != 0
    assert result.output.count("refused") >= 4, result.output
    # the whole command, four roles on one refusing server (it took 20 s when each role
    # retried for 5 s); most of this is reading the rig file and printing the table
    assert elapsed < 2.0, f"rig check took {elapsed:.2f} s on a server that refuses"


def test_rig_check_exits_cleanly_50_times(server, tmp_path):
    """`rig check` once died at exit ("terminate called without an active exception", 134):
    the client library's reader thread was still waiting to call into Python while the
    interpreter shut down."""
    rig = tmp_path / "rig.toml"
    rig.write_text(rig_text(server))

    def check(i: int):
        run = subprocess.run([str(BIN / "indical"), "rig", "check", str(rig)],
                             capture_output=True, text=True, timeout=120)
        if run.returncode != 0 or "all roles reachable" not in run.stdout:
            return (i, run.returncode, run.stderr[-300:])
        return None

    # three at a time: each run is mostly interpreter start-up
    with ThreadPoolExecutor(3) as pool:
        failures = [f for f in pool.map(check, range(50)) if f is not None]
    assert not failures, failures


def test_discover_lists_devices_by_capability_and_writes_a_rig(server, tmp_path):
    """Devices are found by what they can do; the one it had to connect is disconnected again."""
    setprop(server, f"{WHEEL}.CONNECTION.DISCONNECT=On")
    rig = tmp_path / "found.toml"
    run = subprocess.run([str(BIN / "indical"), "rig", "discover", server.address, "--connect",
                          "-o", str(rig)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    for expected in ("camera", "light box", "dust cap", "filter wheel", CAMERA_NAME,
                     FLIPFLAT_NAME, WHEEL):
        assert expected in run.stdout, expected
    assert getprops(server, WHEEL, "CONNECTION")["CONNECTION.DISCONNECT"] == "On"
    text = rig.read_text()
    assert f'device = "{CAMERA_NAME}"' in text and f'device = "{WHEEL}"' in text
    assert text.count(f'device = "{FLIPFLAT_NAME}"') == 2          # panel and cover
    check = subprocess.run([str(BIN / "indical"), "rig", "check", str(rig)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "all roles reachable" in check.stdout, check.stdout
    # the file is not overwritten without --force
    again = subprocess.run([str(BIN / "indical"), "rig", "discover", server.address, "-o",
                            str(rig)], capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "--force" in again.stderr


def test_ctrl_c_puts_everything_back(server, tmp_path):
    """A real SIGINT to `indical run` in the middle of the flats."""
    import signal
    before = imaging_program_settings(server, tmp_path / "imaging")
    rig = tmp_path / "rig.toml"
    rig.write_text(rig_text(server))
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen([str(BIN / "indical"), "run", str(ROOT / "sequences" /
                                                             "panel_flats.py"),
                             "--rig", str(rig), "--out", str(tmp_path / "frames"), "--log",
                             str(log), "--store", str(tmp_path / "t.sqlite"),
                             '--set=FILTERS=["Red"]', "--set=FLATS_PER_FILTER=50",
                             "--set=EXPOSURE_S=0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and len(log.read_text().splitlines()) >= 3):
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert read_back(server) == before


def test_settings_are_put_back_after_the_server_came_back(tmp_path):
    """indiserver restarts mid-run (its drivers start afresh, with their defaults): the run
    reconnects, and at the end puts back what the imaging program had set before the run."""
    first = start_server(tmp_path / "first", [OUR_CCD], SIMS)
    port = first.port
    again = None
    try:
        first.wait_for_devices([CAMERA_NAME])
        cam = CAMERA_NAME
        # the imaging program connects, and once the camera has defined its properties (a
        # loaded machine may take a while) sets its own values
        setprop(first, f"{cam}.CONNECTION.CONNECT=On")
        deadline = time.monotonic() + 10
        while not getprops(first, cam, "CCD_GAIN") and time.monotonic() < deadline:
            time.sleep(0.1)
        setprop(first, f"{cam}.CCD_BINNING.HOR_BIN;VER_BIN=2;2",
                f"{cam}.CCD_FRAME_TYPE.FRAME_DARK=On", f"{cam}.CCD_GAIN.GAIN=120")
        while float(getprops(first, cam, "CCD_GAIN").get("CCD_GAIN.GAIN", "nan")) != 120 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        before = getprops(first, cam, "CCD_BINNING", "CCD_FRAME_TYPE", "CCD_GAIN")
        assert float(before["CCD_GAIN.GAIN"]) == 120, before
        with open_indi_rig(first.address, {"camera": cam}) as rig:
            rig.camera.set_gain(50)
            rig.camera.expose(0.05, FrameType.FLAT)
            first.kill()
            again = start_server(tmp_path / "again", [OUR_CCD], SIMS, port=port)
            again.wait_for_devices([cam])
            frame = rig.camera.expose(0.05, FrameType.FLAT)    # reconnects
            assert frame.data.shape == (240, 320)
            assert rig.camera.conn.generation == 2
        assert getprops(again, cam, "CCD_BINNING", "CCD_FRAME_TYPE", "CCD_GAIN") == before
    finally:
        first.stop()
        if again is not None:
            again.stop()


def test_an_error_mid_run_still_puts_everything_back(server, tmp_path):
    """A sequence that fails half-way (here: an exposure outside the camera's range after two
    frames) leaves the shared settings as the imaging program had them."""
    before = imaging_program_settings(server, tmp_path / "imaging")
    spec = parse_rig(rig_text(server), "shared rig")
    with pytest.raises(ValueError, match="outside"):
        with open_rig(spec) as rig:
            rig.filter_wheel.move_to(1)
            rig.panel.on()
            rig.panel.set_brightness(200)
            rig.camera.expose(0.05, FrameType.FLAT)
            rig.camera.expose(1e6, FrameType.DARK)
    assert read_back(server) == before
