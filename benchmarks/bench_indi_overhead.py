"""Per-frame overhead through indiserver: 1 and 8 megapixels by default, 26 (6248 x 4176) and
61 megapixels (9576 x 6388) with --large.

For each size and camera driver (indical's simulator, and Debian's stock indi_simulator_ccd,
whose sensor stops at 8192 pixels a side in 1.9.9: its "61 MP" is 8192 x 7464), a private
indiserver runs the driver and the INDI camera adapter takes flats, both ways frames travel:
shared memory through the server's local socket, and base64 over TCP. Measured from the end of
the exposure as the client sees it (command sent + exposure time), medians of several runs
in rounds (indical's frames and the bare clients' alternate, so a change of load weighs on both;
the TCP / bare TCP ratio of each round shows the spread):
  - frame in Python: the pixels decoded into the Frame `Camera.expose` returns.
Baselines in the same run:
  - bare clients, over TCP and over the server's local socket: a socket that starts the
    exposure and only waits for the end of the BLOB message (driver and indiserver's share; no
    parsing, no decoding);
  - in-memory copy: one copy of the same FITS bytes, and that copy plus the FITS decode.
And, per size, the time between two flats' exposures in a real panel-flats run (indical's
simulators, the path `auto` picks, frames written behind the sequence): from the end of one
flat's exposure to the request of the next, split into the driver and server's part (until the
whole frame is at indical) and indical's (decoding the frame, then the sequence: level,
banding, save, log), with two baselines on the same server and driver: a bare local-socket
client that only requests exposures and receives frames back to back, and indical's camera
adapter exposing back to back. Our simulator renders each frame and writes its FITS file while
the exposure counts down, so what it does after the exposure is sending the file.
Run: .venv/bin/python benchmarks/bench_indi_overhead.py [--runs N] [--rounds N] [--large]
[--sizes 1,8,26,61] [--panel-only | --no-panel-run]
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
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from indical.drivers.indi.fits_blob import decode_plain
from indical.frame import FrameType
from indical.rig import open_rig, parse_rig
from indical.sequence import panel
from indical.sequence.engine import run_sequence
from indical.sequence.session import Session
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
                    runs: int) -> tuple[dict[str, list[float]], bytes, str]:
    """Times (ms after the end of the exposure) of each frame's arrival and decoding, the
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
    return ({"arrived": [1000.0 * t for t in arrived], "frame": [1000.0 * t for t in decoded]},
            buf.getvalue(), via)


@contextmanager
def bare_session(server: IndiServer, device: str, *, unix: bool
                 ) -> Iterator[tuple[socket.socket, Callable[[], bytes]]]:
    """A bare socket client of the server (TCP without Nagle, or the server's local socket):
    subscribed to the device and its BLOBs, the frame type set to flat (the frames indical
    takes; its rig put the frame type back when it closed) and what the server sent on
    connecting drained. Yields the socket and `receive()`: the next bytes as they come, the
    descriptors of shared buffers that came with them closed unread."""
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
                  f'Also</enableBLOB><newSwitchVector device="{device}" name="CCD_FRAME_TYPE">'
                  '<oneSwitch name="FRAME_FLAT">On</oneSwitch></newSwitchVector>'.encode())
        time.sleep(0.5)
        s.setblocking(False)
        try:
            while receive():
                pass
        except BlockingIOError:
            pass
        s.setblocking(True)
        yield s, receive


def exposure_request(device: str, exposure_s: float) -> bytes:
    return (f'<newNumberVector device="{device}" name="CCD_EXPOSURE"><oneNumber '
            f'name="CCD_EXPOSURE_VALUE">{exposure_s:g}</oneNumber></newNumberVector>').encode()


def until_blob_end(receive: Callable[[], bytes]) -> None:
    """Receive until the end of a BLOB message."""
    tail = b""
    while b"</setBLOBVector>" not in tail:
        tail = tail[-32:] + receive()


def bare_ms(server: IndiServer, device: str, exposure_s: float, runs: int, *,
            unix: bool) -> list[float]:
    """Baseline: a bare socket client that starts the exposure and only waits for the end of
    the BLOB message (no XML parsing, no base64 decoding, the shared buffer's descriptor closed
    unread): the driver and indiserver's share, over TCP or the server's local socket."""
    times = []
    with bare_session(server, device, unix=unix) as (s, receive):
        for _ in range(runs):
            s.sendall(exposure_request(device, exposure_s))
            end = time.perf_counter() + exposure_s
            until_blob_end(receive)
            times.append(time.perf_counter() - end)
            time.sleep(0.3)   # the driver's last CCD_EXPOSURE update
    return [1000.0 * t for t in times]


def rounds_of(server: IndiServer, device: str, exposure_s: float, runs: int, rounds: int
              ) -> tuple[dict[str, Any], bytes, str, list[float], list[float]]:
    """Frames through indical (shared memory, then TCP) and through the bare clients, in
    rounds: indical first in even rounds, the bare clients first in odd ones. Returns every
    time per path, the last frame's FITS bytes, the shared path's description, the TCP /
    bare TCP ratio of each round (medians within the round) and the load at each round."""
    times: dict[str, Any] = {"shared": {"arrived": [], "frame": []},
                             "tcp": {"arrived": [], "frame": []}, "bare": [], "bare_unix": []}
    ratios, loads, fits_bytes, via = [], [], b"", ""
    for number in range(rounds):
        loads.append(os.getloadavg()[0])
        tcp: list[float] = []
        bare: list[float] = []

        def indical() -> None:
            nonlocal fits_bytes, via
            shared, fits_bytes, via = through_indical(server, device, "shared", exposure_s, runs)
            tcp_times, _, _ = through_indical(server, device, "tcp", exposure_s, runs)
            for key in ("arrived", "frame"):
                times["shared"][key] += shared[key]
                times["tcp"][key] += tcp_times[key]
            tcp.extend(tcp_times["frame"])

        def bare_clients() -> None:
            bare.extend(bare_ms(server, device, exposure_s, runs, unix=False))
            times["bare_unix"].extend(bare_ms(server, device, exposure_s, runs, unix=True))

        for step in ((indical, bare_clients) if number % 2 == 0 else (bare_clients, indical)):
            step()
        times["bare"] += bare
        ratios.append(statistics.median(tcp) / statistics.median(bare))
    return times, fits_bytes, via, ratios, loads


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


def bare_loop_gaps(server: IndiServer, device: str, exposure_s: float, n: int) -> list[float]:
    """Baseline for the time between flats: a bare client on the server's local socket that
    requests the next exposure as soon as the last one's BLOB message has ended (no parsing,
    no decoding). Seconds from the end of each exposure to the next request."""
    request = exposure_request(device, exposure_s)
    gaps = []
    with bare_session(server, device, unix=True) as (s, receive):
        end = None
        for _ in range(n + 1):
            s.sendall(request)
            sent = time.perf_counter()
            if end is not None:
                gaps.append(sent - end)
            end = sent + exposure_s
            until_blob_end(receive)
        time.sleep(0.3)   # the driver's last CCD_EXPOSURE update
    return gaps


def adapter_loop_gaps(rig, exposure_s: float, n: int) -> list[float]:
    """Baseline: indical's camera adapter alone, `expose` back to back (the frame decoded into
    an array, nothing else done with it)."""
    camera, gaps, last = rig.camera, [], None
    for _ in range(n + 1):
        camera.expose(exposure_s, FrameType.FLAT)
        t = camera.last_transfer
        if last is not None:
            gaps.append(t["sent_s"] - last["sent_s"] - last["exposure_s"])
        last = dict(t)
    return gaps


@contextmanager
def timed_steps(spans: list[tuple[str, float, float]]) -> Iterator[None]:
    """While in the block, the sequence's steps between two exposures note (name, start, end)
    in `spans`: the level, the banding check, save (handing the frame to the writer), the
    exposure log's line."""
    steps = [(Session, "measure", "level"), (panel, "row_banding", "banding"),
             (Session, "save", "save"), (Session, "record", "log")]
    originals = [getattr(owner, name) for owner, name, _ in steps]

    def timed(fn: Callable, label: str) -> Callable:
        def step(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spans.append((label, t0, time.perf_counter()))
        return step

    for (owner, name, label), fn in zip(steps, originals):
        setattr(owner, name, timed(fn, label))
    try:
        yield
    finally:
        for (owner, name, _), fn in zip(steps, originals):
            setattr(owner, name, fn)


def panel_flats_gaps(width: int, height: int, tmp: Path, flats: int) -> dict[str, Any]:
    """The time between two flats' exposures in a real panel-flats run (indical's simulators,
    the path `auto` picks, frames written behind the sequence), and where it goes; with the
    two baselines on the same server and driver. Medians in ms:
      gap       end of one flat's exposure to the next one's request (the exposure log agrees);
      arrival   end of the exposure to the whole frame at indical (driver and indiserver);
      indical   from the whole frame at indical to the next request, of which
      decode    the frame's FITS decoded into its array (indical's frame channel),
      adapter   the camera adapter after the frame and before the next request (its checks),
      sequence  between the two: level, banding, save (handed to the writer), exposure log
                (each also on its own);
      bare      gap of a bare local-socket client that only requests and receives;
      adapter   gap of indical's camera adapter exposing back to back."""
    server, device = start(OUR_CCD, width, height, tmp)
    exposure_s = exposure_for(width, height)
    transfers: list[dict[str, float]] = []
    spans: list[tuple[str, float, float]] = []
    try:
        server.wait_for_devices(["indical Flip-Flat"])
        bare = bare_loop_gaps(server, device, exposure_s, flats - 2)
        text = rig_text(server.address, device, "auto") + (
            f'[panel]\ndriver = "indi"\nserver = "{server.address}"\n'
            'device = "indical Flip-Flat"\n'
            f'[cover]\ndriver = "indi"\nserver = "{server.address}"\n'
            'device = "indical Flip-Flat"\n')
        with open_rig(parse_rig(text, "bench")) as rig:
            adapter = adapter_loop_gaps(rig, exposure_s, flats - 2)
            camera = rig.camera
            expose = camera.expose

            def timed_expose(*args, **kwargs):
                called = time.perf_counter()
                frame = expose(*args, **kwargs)
                transfers.append({**camera.last_transfer, "called_s": called,
                                  "returned_s": time.perf_counter()})
                return frame

            camera.expose = timed_expose   # this instance, for this run only
            with timed_steps(spans):
                result = run_sequence(ROOT / "sequences" / "panel_flats.py", rig,
                                      FitsFolderSink(tmp / "frames"),
                                      log_path=tmp / "log.jsonl",
                                      store=TrainedStore(tmp / "trained.sqlite"),
                                      overrides={"FLATS_PER_FILTER": flats,
                                                 "DARK_FLATS_PER_EXPOSURE": 1,
                                                 "EXPOSURE_S": exposure_s,
                                                 "EXPOSURE_RANGE_S": (exposure_s,
                                                                      exposure_s * 2)})
        if result.error is not None:
            raise result.error
    finally:
        server.stop()
    entries = [json.loads(line) for line in (tmp / "log.jsonl").read_text().splitlines()]
    if len(entries) != len(transfers):
        raise RuntimeError(f"{len(entries)} exposures logged, {len(transfers)} taken")
    parts: dict[str, list[float]] = {k: [] for k in ("gap", "log_gap", "arrival", "indical",
                                                     "decode", "adapter", "after_frame",
                                                     "before_request", "sequence", "level",
                                                     "banding", "save", "log")}
    for (a, ta), (b, tb) in zip(zip(entries, transfers), zip(entries[1:], transfers[1:])):
        if a["kind"] != "flat" or b["kind"] != "flat":
            continue
        end = ta["sent_s"] + ta["exposure_s"]
        parts["gap"].append(tb["sent_s"] - end)
        parts["log_gap"].append(datetime.fromisoformat(b["time"]).timestamp()
                                - datetime.fromisoformat(a["time"]).timestamp() - a["exposure"])
        parts["arrival"].append(ta["blob_s"] - end)
        parts["indical"].append(tb["sent_s"] - ta["blob_s"])
        parts["decode"].append(ta["frame_s"] - ta["blob_s"])
        parts["adapter"].append(ta["returned_s"] - ta["frame_s"] + tb["sent_s"] - tb["called_s"])
        parts["after_frame"].append(ta["returned_s"] - ta["frame_s"])
        parts["before_request"].append(tb["sent_s"] - tb["called_s"])
        parts["sequence"].append(tb["called_s"] - ta["returned_s"])
        for step in ("level", "banding", "save", "log"):
            parts[step].append(sum(t1 - t0 for name, t0, t1 in spans if name == step
                                   and ta["returned_s"] <= t0 and t1 <= tb["called_s"]))
    figures: dict[str, Any] = {k: median_ms(v) for k, v in parts.items()}
    figures["each"] = parts
    figures.update(bare=median_ms(bare), adapter_loop=median_ms(adapter), n=len(parts["gap"]),
                   exposure_s=exposure_s)
    return figures


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="frames per path in each round")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds per size and driver; indical's and the bare clients' "
                             "frames alternate between rounds, so a change of load meanwhile "
                             "weighs on both")
    parser.add_argument("--large", action="store_true", help="also 26 and 61 megapixels")
    parser.add_argument("--sizes", default="",
                        help="only these sizes, in megapixels, e.g. 26,61 (with --large)")
    parser.add_argument("--no-panel-run", action="store_true",
                        help="skip the panel-flats runs (the slowest part)")
    parser.add_argument("--panel-only", action="store_true",
                        help="only the panel-flats runs (the time between flats)")
    parser.add_argument("--flats", type=int, default=6,
                        help="flats per panel-flats run (gaps: this less 2)")
    args = parser.parse_args()
    sizes = {**SIZES, **(LARGE if args.large else {})}
    if args.sizes:
        wanted = {f"{mp.strip()} MP" for mp in args.sizes.split(",")}
        sizes = {label: size for label, size in sizes.items() if label.split(" (")[0] in wanted}
        if not sizes:
            parser.error(f"--sizes {args.sizes}: none of {', '.join(SIZES | LARGE)}")
    print(f"per-frame overhead through indiserver, median of {args.rounds} rounds of "
          f"{args.runs} runs, times in ms after the end of the exposure ({load()})")
    rows, gaps = [], []
    for label, (w, h) in sizes.items():
        if not args.no_panel_run:
            with tempfile.TemporaryDirectory(prefix="indical-bench-") as tmp:
                before = load()
                g = panel_flats_gaps(w, h, Path(tmp), args.flats)
                g.update(size=label, load=f"{before}; {load()}")
            gaps.append(g)
            print(f"\n{label}: panel-flats run, exposure {g['exposure_s']:g} s, median of "
                  f"{g['n']} gaps between flats ({g['load']})")
            print(f"  gap {g['gap']:.0f} (exposure log {g['log_gap']:.0f}): driver and server "
                  f"{g['arrival']:.0f}, indical {g['indical']:.0f} (decode {g['decode']:.0f}, "
                  f"adapter {g['adapter']:.0f}, sequence {g['sequence']:.0f}: level "
                  f"{g['level']:.0f}, banding {g['banding']:.0f}, save {g['save']:.0f}, log "
                  f"{g['log']:.0f})")
            print(f"  baselines: bare local-socket loop {g['bare']:.0f}, indical's camera "
                  f"adapter alone {g['adapter_loop']:.0f}")
        if args.panel_only:
            continue
        exposure_s = exposure_for(w, h)
        for driver in (OUR_CCD, STOCK):
            sw, sh = (w, h) if driver == OUR_CCD or w <= STOCK_MAX else \
                (STOCK_MAX, int(round(w * h / STOCK_MAX / 8)) * 8)
            with tempfile.TemporaryDirectory(prefix="indical-bench-") as tmp:
                server, device = start(driver, sw, sh, Path(tmp))
                try:
                    if driver == STOCK:
                        stock_size(server, device, sw, sh)
                    times, fits_bytes, via_shared, ratios, loads = rounds_of(
                        server, device, exposure_s, args.runs, args.rounds)
                finally:
                    server.stop()
            shared = {k: statistics.median(v) for k, v in times["shared"].items()}
            tcp = {k: statistics.median(v) for k, v in times["tcp"].items()}
            bare = statistics.median(times["bare"])
            bare_unix = statistics.median(times["bare_unix"])
            copy, copy_decode = in_memory_ms(fits_bytes, args.runs)
            del fits_bytes
            gc.collect()
            row = {"size": label, "driver": driver, "sensor": f"{sw}x{sh}",
                   "shared": shared["frame"], "tcp": tcp["frame"], "tcp_arrived": tcp["arrived"],
                   "bare": bare, "bare_unix": bare_unix, "copy": copy,
                   "copy_decode": copy_decode, "ratios": ratios, "load": loads}
            rows.append(row)
            print(f"\n{label}, {driver} ({sw}x{sh}), exposure {exposure_s:g} s")
            print(f"  shared memory  frame in Python {shared['frame']:8.1f}   "
                  f"x{shared['frame'] / bare_unix:.2f} of the bare local-socket client; "
                  f"indical's share {shared['frame'] - bare_unix:.1f} = "
                  f"x{(shared['frame'] - bare_unix) / copy_decode:.2f} of copy+decode "
                  f"({via_shared})")
            print(f"  base64 / TCP   frame in Python {tcp['frame']:8.1f}   "
                  f"x{tcp['frame'] / bare:.2f} of the bare TCP client (text arrived "
                  f"{tcp['arrived']:.1f}); per round x{' x'.join(f'{r:.2f}' for r in ratios)}")
            print(f"  baselines      bare TCP client {bare:8.1f}   bare local-socket client "
                  f"{bare_unix:.1f}   in-memory copy {copy:.1f}, copy+decode {copy_decode:.1f}")
            print(f"  load average   {min(loads):.1f}-{max(loads):.1f} (1 min, at each round)")
    if rows:
        print("\n| size | driver | shared | bare local | x bare local | share / (copy+decode) | "
              "TCP | bare TCP | x bare TCP | per round | copy | copy+decode | load |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['driver']} ({r['sensor']}) | {r['shared']:.0f} | "
              f"{r['bare_unix']:.0f} | {r['shared'] / r['bare_unix']:.2f} | "
              f"{(r['shared'] - r['bare_unix']) / r['copy_decode']:.2f} | {r['tcp']:.0f} | "
              f"{r['bare']:.0f} | {r['tcp'] / r['bare']:.2f} | "
              f"{min(r['ratios']):.2f}-{max(r['ratios']):.2f} | {r['copy']:.1f} | "
              f"{r['copy_decode']:.1f} | {min(r['load']):.1f}-{max(r['load']):.1f} |")
    if gaps:
        print("\nTime between two flats' exposures (panel-flats run, ms, medians):")
        print("| size | exposure | gap | driver + server | indical | decode | adapter | "
              "sequence | bare loop | adapter loop | load before; after |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    for g in gaps:
        print(f"| {g['size']} | {g['exposure_s']:.2f} s | {g['gap']:.0f} | {g['arrival']:.0f} | "
              f"{g['indical']:.0f} | {g['decode']:.0f} | {g['adapter']:.0f} | "
              f"{g['sequence']:.0f} | "
              f"{g['bare']:.0f} | {g['adapter_loop']:.0f} | {g['load']} |")


if __name__ == "__main__":
    main()
