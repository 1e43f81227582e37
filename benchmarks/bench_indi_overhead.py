"""Per-frame overhead through indiserver: 1 and 8 megapixels by default, 26 (6248 x 4176) and
61 megapixels (9576 x 6388) with --large.

For each size and camera driver (indical's simulator, and Debian's stock indi_simulator_ccd,
whose sensor stops at 8192 pixels a side in 1.9.9: its "61 MP" is 8192 x 7456), a private
indiserver runs the driver and the INDI camera adapter takes flats, both ways frames travel:
shared memory through the server's local socket, and base64 over TCP. Measured from the end of
the exposure as the client sees it (command sent + exposure time), medians of several runs:
  - frame in Python: the pixels decoded into the Frame `Camera.expose` returns.
Baselines in the same run:
  - bare clients, over TCP and over the server's local socket: a socket that starts the
    exposure and only waits for the end of the BLOB message (driver and indiserver's share; no
    parsing, no decoding);
  - in-memory copy: one copy of the same FITS bytes, and that copy plus the FITS decode.
And, per size, the time between two flats' exposures in a real panel-flats run (indical's
simulators, the path `auto` picks, frames written behind the sequence): from the end of one
flat's exposure to the start of the next, from the exposure log.
Run: .venv/bin/python benchmarks/bench_indi_overhead.py [--runs N] [--large]
Runs are sequential; a 61 MP frame is 122 MB of pixels and 163 MB of base64."""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from indical.drivers.indi.fits_blob import decode_plain
from indical.frame import FrameType
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sequence.trained import TrainedStore
from indical.simulators.indi.ccd import write_fits
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT, IndiServer
from indical.sinks import FitsFolderSink

SIZES = {"1 MP (1024x1024)": (1024, 1024), "8 MP (3264x2448)": (3264, 2448)}
LARGE = {"26 MP (6248x4176)": (6248, 4176), "61 MP (9576x6388)": (9576, 6388)}
STOCK = "indi_simulator_ccd"
STOCK_MAX = 8192
ROOT = Path(__file__).resolve().parents[1]


def exposure_for(width: int, height: int) -> float:
    """Longer than our simulator needs to render the frame (it renders while counting down)."""
    return max(2.0, 0.15 * width * height / 1e6)


def median_ms(values: list[float]) -> float:
    return 1000.0 * statistics.median(values)


def start(driver: str, width: int, height: int, tmp: Path) -> tuple[IndiServer, str]:
    sims = (f"[camera]\nwidth = {width}\nheight = {height}\nreadout_s = 0.0\n"
            "[flipflat]\nclosed = true\ntravel_s = 0.0\n")
    (tmp / "sims.toml").write_text(sims)
    drivers = [STOCK] if driver == STOCK else [OUR_CCD, OUR_FLIPFLAT]
    server = IndiServer(drivers, workdir=tmp,
                        env={"INDICAL_INDI_SIM_CONFIG": str(tmp / "sims.toml")}).start()
    device = "CCD Simulator" if driver == STOCK else "indical Flat Camera"
    server.wait_for_devices([device])
    return server, device


def rig_text(address: str, device: str, frames: str) -> str:
    return (f'[camera]\ndriver = "indi"\nserver = "{address}"\ndevice = "{device}"\n'
            f'frames = "{frames}"\nreadout_allowance_s = 120.0\n')


def stock_size(server: IndiServer, device: str, width: int, height: int) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b'<getProperties version="1.7"/>' + (
            f'<newSwitchVector device="{device}" name="CONNECTION"><oneSwitch name="CONNECT">'
            'On</oneSwitch></newSwitchVector>').encode())
        time.sleep(1.0)
        s.sendall((f'<newNumberVector device="{device}" name="SIMULATOR_SETTINGS">'
                   f'<oneNumber name="SIM_XRES">{width}</oneNumber>'
                   f'<oneNumber name="SIM_YRES">{height}</oneNumber></newNumberVector>').encode())
        time.sleep(1.0)


def through_indical(server: IndiServer, device: str, frames: str, exposure_s: float,
                    runs: int) -> tuple[dict[str, float], bytes, str]:
    """Medians (ms after the end of the exposure) of the frame's arrival and decoding, the
    FITS bytes of the last frame (for the in-memory baselines), and the path used."""
    spec = parse_rig(rig_text(server.address, device, frames), "bench")
    arrived, decoded = [], []
    with open_rig(spec) as rig:
        camera = rig.camera
        via = str(camera.describe()["frames"])
        camera.expose(min(exposure_s, 1.0), FrameType.FLAT)   # warm-up
        for _ in range(runs):
            frame = camera.expose(exposure_s, FrameType.FLAT)
            t = camera.last_transfer
            end = t["sent_s"] + exposure_s
            arrived.append(t["blob_s"] - end)
            decoded.append(t["frame_s"] - end)
        buf = io.BytesIO()
        write_fits(buf, frame.data, frame.meta)
    return {"arrived": median_ms(arrived), "frame": median_ms(decoded)}, buf.getvalue(), via


def bare_ms(server: IndiServer, device: str, exposure_s: float, runs: int, *,
            unix: bool) -> float:
    """Baseline: a bare socket client that starts the exposure and only waits for the end of
    the BLOB message (no XML parsing, no base64 decoding, the shared buffer's descriptor closed
    unread): the driver and indiserver's share, over TCP or the server's local socket."""
    times = []
    if unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0" + server.socket_path)
    else:
        s = socket.create_connection(("127.0.0.1", server.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def receive() -> bytes:
        data, ancillary, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(64))
        for _level, _kind, fds in ancillary:
            for i in range(0, len(fds) - len(fds) % 4, 4):
                os.close(int.from_bytes(fds[i:i + 4], sys.byteorder))
        return data

    with s:
        s.sendall(f'<getProperties version="1.7"/><enableBLOB device="{device}" name="CCD1">'
                  'Also</enableBLOB>'.encode())
        # the same frames indical took (its rig put the frame type back when it closed)
        s.sendall(f'<newSwitchVector device="{device}" name="CCD_FRAME_TYPE"><oneSwitch '
                  'name="FRAME_FLAT">On</oneSwitch></newSwitchVector>'.encode())
        time.sleep(0.5)
        s.setblocking(False)
        try:
            while receive():
                pass
        except BlockingIOError:
            pass
        s.setblocking(True)
        for _ in range(runs):
            s.sendall((f'<newNumberVector device="{device}" name="CCD_EXPOSURE"><oneNumber '
                       f'name="CCD_EXPOSURE_VALUE">{exposure_s:g}</oneNumber>'
                       '</newNumberVector>').encode())
            end = time.perf_counter() + exposure_s
            tail = b""
            while b"</setBLOBVector>" not in tail:
                tail = tail[-32:] + receive()
            times.append(time.perf_counter() - end)
            time.sleep(0.3)   # the driver's last CCD_EXPOSURE update
    return median_ms(times)


def in_memory_ms(fits_bytes: bytes, runs: int) -> tuple[float, float]:
    """Baselines without INDI: one copy of the FITS bytes; that copy and the FITS decode."""
    copy, both = [], []
    src = np.frombuffer(fits_bytes, np.uint8)
    for _ in range(max(runs, 3)):
        t0 = time.perf_counter()
        dst = src.copy()
        t1 = time.perf_counter()
        decode_plain(dst, "bench")
        t2 = time.perf_counter()
        copy.append(t1 - t0)
        both.append(t2 - t0)
        del dst
    return median_ms(copy), median_ms(both)


def panel_flats_gap_ms(width: int, height: int, tmp: Path) -> tuple[float, int]:
    """Median time from the end of one flat's exposure to the start of the next in a real
    panel-flats run (indical's simulators), and how many gaps it had."""
    server, device = start(OUR_CCD, width, height, tmp)
    try:
        server.wait_for_devices(["indical Flip-Flat"])
        text = rig_text(server.address, device, "auto") + (
            f'[panel]\ndriver = "indi"\nserver = "{server.address}"\n'
            'device = "indical Flip-Flat"\n'
            f'[cover]\ndriver = "indi"\nserver = "{server.address}"\n'
            'device = "indical Flip-Flat"\n')
        exposure_s = exposure_for(width, height)
        with open_rig(parse_rig(text, "bench")) as rig:
            result = run_sequence(ROOT / "sequences" / "panel_flats.py", rig,
                                  FitsFolderSink(tmp / "frames"), log_path=tmp / "log.jsonl",
                                  store=TrainedStore(tmp / "trained.sqlite"),
                                  overrides={"FLATS_PER_FILTER": 4, "DARK_FLATS_PER_EXPOSURE": 1,
                                             "EXPOSURE_S": exposure_s,
                                             "EXPOSURE_RANGE_S": (exposure_s, exposure_s * 2)})
        if result.error is not None:
            raise result.error
    finally:
        server.stop()
    entries = [json.loads(line) for line in (tmp / "log.jsonl").read_text().splitlines()]
    flats = [e for e in entries if e["kind"] == "flat"]
    gaps = []
    for a, b in zip(flats, flats[1:]):
        end_a = datetime.fromisoformat(a["time"]).timestamp() + a["exposure"]
        gaps.append(datetime.fromisoformat(b["time"]).timestamp() - end_a)
    return (median_ms(gaps) if gaps else float("nan")), len(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="also 26 and 61 megapixels")
    parser.add_argument("--no-panel-run", action="store_true",
                        help="skip the panel-flats runs (the slowest part)")
    args = parser.parse_args()
    sizes = {**SIZES, **(LARGE if args.large else {})}
    print(f"per-frame overhead through indiserver, median of {args.runs} runs, times in ms "
          "after the end of the exposure")
    rows = []
    for label, (w, h) in sizes.items():
        exposure_s = exposure_for(w, h)
        for driver in (OUR_CCD, STOCK):
            sw, sh = (w, h) if driver == OUR_CCD or w <= STOCK_MAX else \
                (STOCK_MAX, int(round(w * h / STOCK_MAX / 8)) * 8)
            with tempfile.TemporaryDirectory(prefix="indical-bench-") as tmp:
                server, device = start(driver, sw, sh, Path(tmp))
                try:
                    if driver == STOCK:
                        stock_size(server, device, sw, sh)
                    shared, fits_bytes, via_shared = through_indical(server, device, "shared",
                                                                     exposure_s, args.runs)
                    tcp, _, via_tcp = through_indical(server, device, "tcp", exposure_s,
                                                      args.runs)
                    bare = bare_ms(server, device, exposure_s, args.runs, unix=False)
                    bare_unix = bare_ms(server, device, exposure_s, args.runs, unix=True)
                finally:
                    server.stop()
            copy, copy_decode = in_memory_ms(fits_bytes, args.runs)
            del fits_bytes
            gc.collect()
            row = {"size": label, "driver": driver, "sensor": f"{sw}x{sh}",
                   "shared": shared["frame"], "tcp": tcp["frame"], "tcp_arrived": tcp["arrived"],
                   "bare": bare, "bare_unix": bare_unix, "copy": copy,
                   "copy_decode": copy_decode}
            rows.append(row)
            print(f"\n{label}, {driver} ({sw}x{sh}), exposure {exposure_s:g} s")
            print(f"  shared memory  frame in Python {shared['frame']:8.1f}   "
                  f"x{shared['frame'] / bare_unix:.2f} of the bare local-socket client; "
                  f"indical's share {shared['frame'] - bare_unix:.1f} = "
                  f"x{(shared['frame'] - bare_unix) / copy_decode:.2f} of copy+decode "
                  f"({via_shared})")
            print(f"  base64 / TCP   frame in Python {tcp['frame']:8.1f}   "
                  f"x{tcp['frame'] / bare:.2f} of the bare TCP client (text arrived "
                  f"{tcp['arrived']:.1f})")
            print(f"  baselines      bare TCP client {bare:8.1f}   bare local-socket client "
                  f"{bare_unix:.1f}   in-memory copy {copy:.1f}, copy+decode {copy_decode:.1f}")
        if not args.no_panel_run:
            with tempfile.TemporaryDirectory(prefix="indical-bench-") as tmp:
                gap, n = panel_flats_gap_ms(w, h, Path(tmp))
            print(f"  panel-flats run: {gap:.0f} ms from one flat's exposure end to the next's "
                  f"start (median of {n})")
            rows[-1]["panel_gap"] = rows[-2]["panel_gap"] = gap
    print("\n| size | driver | shared | bare local | x bare local | share / (copy+decode) | "
          "TCP | bare TCP | x bare TCP | copy | copy+decode | flats gap |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['driver']} ({r['sensor']}) | {r['shared']:.0f} | "
              f"{r['bare_unix']:.0f} | {r['shared'] / r['bare_unix']:.2f} | "
              f"{(r['shared'] - r['bare_unix']) / r['copy_decode']:.2f} | {r['tcp']:.0f} | "
              f"{r['bare']:.0f} | {r['tcp'] / r['bare']:.2f} | {r['copy']:.1f} | "
              f"{r['copy_decode']:.1f} | {r.get('panel_gap', float('nan')):.0f} |")


if __name__ == "__main__":
    main()
