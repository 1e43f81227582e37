"""Faults through a real indiserver: the server or a driver dies mid-exposure, a camera never
delivers, a device name is wrong, no server is there. Each ends in a clear error naming the
device or server, never a hang, and work resumes once things are back."""

from __future__ import annotations

import threading
import time

import pytest

from indi_helpers import SMALL_SIMS, open_indi_rig, start_server
from indical.errors import DeviceError, DeviceNotFound, DeviceTimeout, IndicalError
from indical.frame import FrameType
from indical.simulators.indi.server import OUR_CCD, IndiServer, free_port

CAMERA = "indical Flat Camera"
#: every fault is tried on both ways frames travel (blob_channel.py): shared memory through the
#: server's local socket, and base64 over TCP
BOTH_PATHS = pytest.mark.parametrize("frames", ["shared", "tcp"])


def _expose_in_background(camera, exposure_s: float) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["frame"] = camera.expose(exposure_s, FrameType.FLAT)
        except Exception as exc:
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _pid_of(server: IndiServer, executable: str) -> int:
    for pid in server.driver_pids():
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if executable.encode() in fh.read():
                return pid
    raise AssertionError(f"{executable} is not running under indiserver")


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if b") Z " in fh.read():
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@BOTH_PATHS
def test_server_killed_during_exposure_gives_clear_error_then_reconnects(tmp_path, frames):
    server = start_server(tmp_path / "first", [OUR_CCD], SMALL_SIMS)
    driver = _pid_of(server, OUR_CCD)
    try:
        rig = open_indi_rig(server.address, {"camera": CAMERA}, connect_timeout_s=10.0,
                            frames=frames)
        camera = rig.camera
        thread, outcome = _expose_in_background(camera, 5.0)
        time.sleep(1.0)
        killed = time.monotonic()
        server.kill()
        thread.join(10)
        assert not thread.is_alive(), "the exposure hung after the server died"
        error = outcome.get("error")
        assert isinstance(error, DeviceError) and "frame" not in outcome
        assert CAMERA in str(error) and server.address in str(error)
        assert outcome["ended"] - killed < 2.0
        assert _gone(driver, 5.0), "the driver kept running after indiserver died"

        # the server comes back on the same port: the next exposure reconnects and works
        again = start_server(tmp_path / "again", [OUR_CCD], SMALL_SIMS, port=server.port)
        try:
            frame = camera.expose(0.1, FrameType.FLAT)
            assert frame.data.shape == (240, 320)
            assert camera.conn.generation == 2
        finally:
            rig.disconnect()
            again.stop()
    finally:
        server.stop()


@BOTH_PATHS
def test_driver_killed_during_exposure_then_restarted_by_indiserver(tmp_path, frames):
    server = start_server(tmp_path, [OUR_CCD], SMALL_SIMS)
    try:
        with open_indi_rig(server.address, {"camera": CAMERA}, timeout_s=15.0,
                           frames=frames) as rig:
            camera = rig.camera
            camera.expose(0.1, FrameType.FLAT)
            thread, outcome = _expose_in_background(camera, 5.0)
            time.sleep(1.0)
            killed = time.monotonic()
            import os
            import signal
            os.kill(_pid_of(server, OUR_CCD), signal.SIGKILL)
            thread.join(10)
            assert not thread.is_alive()
            error = outcome.get("error")
            assert isinstance(error, DeviceError) and CAMERA in str(error)
            assert outcome["ended"] - killed < 3.0
            # indiserver restarts the driver; the adapter connects it and sets it up again
            frame = camera.expose(0.1, FrameType.FLAT)
            assert frame.data.shape == (240, 320)
    finally:
        server.stop()


def test_camera_that_never_delivers_times_out_naming_it(tmp_path):
    server = start_server(tmp_path, [OUR_CCD], SMALL_SIMS.replace("[camera]\n",
                                                                  "[camera]\nhang = true\n"))
    try:
        with open_indi_rig(server.address, {"camera": CAMERA}) as rig:
            t0 = time.monotonic()
            with pytest.raises(DeviceTimeout, match=CAMERA) as caught:
                rig.camera.expose(0.2, FrameType.FLAT, timeout_s=2.0)
            assert 2.0 <= time.monotonic() - t0 < 4.0
            assert "2 s" in str(caught.value)
            # the adapter aborted the stuck exposure
            conn = rig.camera.conn
            conn.wait_for(lambda: conn.props[(CAMERA, "CCD_EXPOSURE")].state == "Alert",
                          timeout_s=3.0, device=CAMERA, action="waiting for the abort")
    finally:
        server.stop()


def test_wrong_device_name_lists_the_devices_there(sim_server):
    with pytest.raises(DeviceNotFound) as caught:
        open_indi_rig(sim_server.address, {"camera": "CCD Simulatr"}, timeout_s=1.0)
    message = str(caught.value)
    assert "CCD Simulatr" in message and sim_server.address in message
    assert "indical Flat Camera" in message and "indical Flip-Flat" in message


def test_no_server_there_names_the_address():
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=address):
        open_indi_rig(address, {"camera": CAMERA}, connect_timeout_s=1.0)
    assert time.monotonic() - t0 < 5.0


def test_frames_come_back_after_the_driver_is_done_with_the_exposure(tmp_path):
    """Drivers often send CCD_EXPOSURE's last update (0 s, Ok) after the frame. The adapter
    waits for it, so the next exposure is neither refused as "in progress" nor written into a
    property that late update is still changing (which once sent 0 s)."""
    server = start_server(tmp_path, [OUR_CCD], SMALL_SIMS.replace(
        "[camera]\n", "[camera]\nexposure_ok_delay_s = 0.3\n"))
    try:
        with open_indi_rig(server.address, {"camera": CAMERA}) as rig:
            camera = rig.camera
            for exposure_s in (0.05, 0.2, 0.1):
                frame = camera.expose(exposure_s, FrameType.FLAT)
                assert frame.meta.exposure_s == exposure_s
                assert camera.conn.props[(CAMERA, "CCD_EXPOSURE")].state == "Ok"
    finally:
        server.stop()


@BOTH_PATHS
def test_a_truncated_frame_is_an_error_never_a_partial_frame(tmp_path, frames):
    server = start_server(tmp_path, [OUR_CCD], SMALL_SIMS.replace(
        "[camera]\n", "[camera]\ntruncate_frames = true\n"))
    try:
        with open_indi_rig(server.address, {"camera": CAMERA}, frames=frames) as rig:
            camera = rig.camera
            assert camera.describe()["frames"].split()[0] == \
                {"shared": "shared", "tcp": "base64"}[frames]
            for _ in range(2):   # and the next exposure meets the same, not a stale frame
                with pytest.raises(DeviceError, match=f"{CAMERA}: .*truncated"):
                    camera.expose(0.05, FrameType.FLAT)
    finally:
        server.stop()


def test_frames_fall_back_to_tcp_when_the_local_socket_is_not_there(tmp_path):
    server = start_server(tmp_path, [OUR_CCD], SMALL_SIMS)
    try:
        with open_indi_rig(server.address, {"camera": CAMERA},
                           local_socket=str(tmp_path / "no-such-socket")) as rig:
            assert rig.camera.describe()["frames"].startswith("base64 over TCP")
            assert rig.camera.expose(0.05, FrameType.FLAT).data.shape == (240, 320)
        with pytest.raises(DeviceError, match="frames = 'shared'"):
            open_indi_rig(server.address, {"camera": CAMERA}, frames="shared",
                          local_socket=str(tmp_path / "no-such-socket"))
    finally:
        server.stop()


def test_server_killed_while_a_frame_is_on_its_way_gives_no_partial_frame(tmp_path):
    """Over TCP a 12-megapixel frame is 32 MB of base64: kill indiserver while the camera's
    frame connection is inside that text. The exposure ends with an error naming the camera
    and the server; no frame, whole or partial, comes out of it."""
    sims = SMALL_SIMS.replace("width = 320\nheight = 240", "width = 4000\nheight = 3000")
    server = start_server(tmp_path, [OUR_CCD], sims)
    try:
        rig = open_indi_rig(server.address, {"camera": CAMERA}, frames="tcp",
                            readout_allowance_s=60.0)
        killed = False
        try:
            camera = rig.camera
            for _ in range(3):
                frames = camera._channel
                before = frames.latest_serial
                thread, outcome = _expose_in_background(camera, 0.1)
                deadline = time.monotonic() + 60
                while frames._text is None and "frame" not in outcome and \
                        time.monotonic() < deadline:
                    time.sleep(0.0005)
                if frames._text is None:      # the whole frame came before we looked: again
                    thread.join(60)
                    continue
                server.kill()
                killed = True
                thread.join(10)
                assert not thread.is_alive()
                error = outcome.get("error")
                assert isinstance(error, DeviceError) and "frame" not in outcome
                assert CAMERA in str(error) and server.address in str(error)
                assert frames.latest_serial == before      # nothing was delivered
                break
            else:
                pytest.fail("never caught the frame on its way in three exposures")
        finally:
            if killed:   # what indical changed can't be put back on a server that is gone
                with pytest.raises(IndicalError, match="connection refused"):
                    rig.disconnect()
            else:
                rig.disconnect()
    finally:
        server.stop()
