"""Per-frame overhead through indiserver, for 1- and 8-megapixel frames.

For each size, indical's camera simulator runs under a private indiserver (readout time 0, the
frame rendered while the exposure counts down) and the INDI camera adapter takes flats. Measured
from the end of the exposure as the client sees it (command sent + exposure time):
  - BLOB in Python: the CCD1 bytes copied in pyindi-client's callback,
  - frame in Python: the FITS decoded into a Frame (what `Camera.expose` returns),
  - FITS on disk: the frame written atomically (fsync) by indical's FITS sink.
Baselines in the same run: a bare socket client that only waits for the BLOB message to end
(driver + indiserver, no client-side parsing), and for the same frame without INDI: encoding the
FITS bytes the driver sends, decoding them, and the atomic FITS write alone. Medians of several
runs.
Run: .venv/bin/python benchmarks/bench_indi_overhead.py [--runs N]"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

from indical.drivers.indi.camera import decode_fits
from indical.fits.io import write_frame
from indical.frame import FrameType
from indical.rig import open_rig, parse_rig
from indical.simulators.indi.ccd import encode_fits
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT, IndiServer, simulator_rig_toml

SIZES = {"1 MP (1024x1024)": (1024, 1024), "8 MP (3264x2448)": (3264, 2448)}
EXPOSURE_S = 2.0   # longer than rendering an 8 MP frame on a slow machine


def median_ms(values: list[float]) -> float:
    return 1000.0 * statistics.median(values)


def measure(width: int, height: int, runs: int, tmp: Path) -> dict[str, float]:
    sims = (f"[camera]\nwidth = {width}\nheight = {height}\nreadout_s = 0.0\n"
            "[flipflat]\nclosed = true\ntravel_s = 0.0\n")
    (tmp / "sims.toml").write_text(sims)
    server = IndiServer([OUR_CCD, OUR_FLIPFLAT], workdir=tmp,
                        env={"INDICAL_INDI_SIM_CONFIG": str(tmp / "sims.toml")}).start()
    blob, frame_in, disk, encode, decode, write = [], [], [], [], [], []
    try:
        server.wait_for_devices(["indical Flat Camera", "indical Flip-Flat"])
        spec = parse_rig(simulator_rig_toml(server.address, filter_wheel=False), "bench")
        with open_rig(spec) as rig:
            rig.panel.set_brightness(180)
            rig.panel.on()
            rig.camera.expose(0.1, FrameType.FLAT)   # warm-up: illumination map, BLOB mode
            for n in range(runs):
                frame = rig.camera.expose(EXPOSURE_S, FrameType.FLAT)
                t = rig.camera.last_transfer
                end = t["sent_s"] + EXPOSURE_S
                write_frame(frame, tmp / f"indi_{n}.fits")
                on_disk = time.perf_counter()
                blob.append(t["blob_s"] - end)
                frame_in.append(t["frame_s"] - end)
                disk.append(on_disk - end)
                # baselines: the same frame, no indiserver
                t0 = time.perf_counter()
                data = encode_fits(frame.data, frame.meta)
                t1 = time.perf_counter()
                decode_fits(data, "bench")
                t2 = time.perf_counter()
                write_frame(frame, tmp / f"local_{n}.fits")
                t3 = time.perf_counter()
                encode.append(t1 - t0)
                decode.append(t2 - t1)
                write.append(t3 - t2)
            raw = raw_client_ms(server.port, runs)
            rig.panel.off()
    finally:
        server.stop()
    return {"blob": median_ms(blob), "frame": median_ms(frame_in), "disk": median_ms(disk),
            "encode": median_ms(encode), "decode": median_ms(decode), "write": median_ms(write),
            "raw": raw, "mb": width * height * 2 / 1e6}


def raw_client_ms(port: int, runs: int) -> float:
    """Baseline: a bare socket client that starts the exposure and only waits for the end of
    the BLOB message (no XML parsing, no base64 decoding): the driver and indiserver's share."""
    times = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b'<getProperties version="1.7"/>'
                  b'<enableBLOB device="indical Flat Camera" name="CCD1">Also</enableBLOB>')
        time.sleep(0.5)
        s.setblocking(False)
        try:
            while s.recv(1 << 20):
                pass
        except BlockingIOError:
            pass
        s.setblocking(True)
        for _ in range(runs):
            s.sendall(b'<newNumberVector device="indical Flat Camera" name="CCD_EXPOSURE">'
                      b'<oneNumber name="CCD_EXPOSURE_VALUE">%g</oneNumber></newNumberVector>'
                      % EXPOSURE_S)
            end = time.perf_counter() + EXPOSURE_S
            tail = b""
            while b"</setBLOBVector>" not in tail:
                tail = tail[-32:] + s.recv(1 << 20)
            times.append(time.perf_counter() - end)
    return median_ms(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"per-frame overhead through indiserver, median of {args.runs} runs, "
          f"exposure {EXPOSURE_S:g} s, times after the end of the exposure")
    for label, (w, h) in SIZES.items():
        with tempfile.TemporaryDirectory(prefix="indical-bench-") as tmp:
            r = measure(w, h, args.runs, Path(tmp))
        local = r["encode"] + r["decode"]
        print(f"\n{label}, {r['mb']:.1f} MB of pixels")
        print(f"  BLOB in Python        {r['blob']:8.1f} ms   "
              f"(baseline bare socket client, no parsing: {r['raw']:.1f} ms)")
        print(f"  frame in Python       {r['frame']:8.1f} ms   "
              f"(baseline FITS encode+decode in-process {local:.1f} ms: "
              f"x{r['frame'] / local:.1f})")
        print(f"  FITS on disk          {r['disk']:8.1f} ms   "
              f"(baseline atomic FITS write {r['write']:.1f} ms; "
              f"transport share {r['frame'] - local:.1f} ms)")
        print(f"  throughput to Python  {r['mb'] / (r['frame'] / 1000):8.1f} MB/s")


if __name__ == "__main__":
    main()
