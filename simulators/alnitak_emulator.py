"""An emulated Alnitak Flip-Flat / Flip-Mask / Flat-Man on a pseudo-terminal.

It answers the firmware's serial protocol on a pty that pyserial opens like a USB port, moves its
cover in real time, and publishes its light and cover state in a small JSON state file, from
which the simulated observatory lights the simulated camera (simulators/light_sources.py).
Run `indical-alnitak-emulator` to try the `alnitak` driver without the hardware.

The firmware is written here from the protocol description alone, independently of the driver,
so that tests of the driver against it mean something."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import select
import signal
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

from indical.simulators.models.panel import PanelParams

FLIP_FLAT, FLIP_MASK, FLAT_MAN = 99, 98, 19
_LIGHT_ONLY = (10, 15, 19)


class AlnitakEmulator:
    """The firmware of one device, served on a pty until `stop()`.

    `device_id` picks the product; `travel_s` is how long the cover takes to move;
    `mute` makes it ignore every command (a dead or wrong device); `state_file` is where it
    publishes what the simulated camera should see; `link` is a stable path (a symlink to the pty)
    to write in rig files."""

    def __init__(self, *, device_id: int = FLIP_FLAT, travel_s: float = 2.0,
                 brightness: int = 0, firmware: int = 213, cover_closed: bool = False,
                 panel: PanelParams | None = None, state_file: str | Path | None = None,
                 link: str | Path | None = None, mute: bool = False,
                 jam_cover: bool = False) -> None:
        self.device_id = device_id
        self.travel_s = travel_s
        self.brightness = brightness
        self.firmware = firmware
        self.panel = panel or PanelParams()
        self.state_file = Path(state_file) if state_file else None
        self.link = Path(link) if link else None
        self.mute = mute
        self.jam_cover = jam_cover
        self.light_on = False
        self.has_cover = device_id not in _LIGHT_ONLY
        self.has_light = device_id != FLIP_MASK
        self._cover = 1 if cover_closed else 2          # 0 moving, 1 closed, 2 open, 3 timed out
        self._target = self._cover
        self._arrive_at = 0.0
        #: Every command line received, in order (for tests that check what the driver sent).
        self.received: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self.port = ""

    # -- the firmware --
    def _tick(self) -> bool:
        """Finish a cover move whose travel time is over; True when the state changed."""
        if self._cover == 0 and time.monotonic() >= self._arrive_at:
            self._cover = 3 if self.jam_cover else self._target
            return True
        return False

    def respond(self, line: str) -> str | None:
        """The reply to one command line, or None when the firmware stays silent."""
        self.received.append(line)
        self._tick()
        if self.mute or len(line) < 2 or line[0] != ">":
            return None
        letter, digits = line[1], line[2:5]
        ident = f"{self.device_id:02d}"
        if letter == "P":
            return f"*P{ident}000"
        if letter == "V":
            return f"*V{ident}{self.firmware:03d}"
        if letter in "OC" and self.has_cover:
            target = 2 if letter == "O" else 1
            if self._cover != target:
                self._target = target
                self._cover = 0
                self._arrive_at = time.monotonic() + self.travel_s
            return f"*{letter}{ident}000"
        if letter == "L" and self.has_light:
            self.light_on = True
            return f"*L{ident}000"
        if letter == "D" and self.has_light:
            self.light_on = False
            return f"*D{ident}000"
        if letter == "B" and self.has_light and digits.isdigit():
            self.brightness = min(255, int(digits))
            return f"*B{ident}{self.brightness:03d}"
        if letter == "J" and self.has_light:
            return f"*J{ident}{self.brightness:03d}"
        if letter == "S":
            motor = 1 if self._cover == 0 else 0
            cover = self._cover if self.has_cover else 0
            return f"*S{ident}{motor}{int(self.light_on)}{cover}"
        return None

    def state(self) -> dict[str, object]:
        """What the device is doing, as the simulated observatory reads it."""
        cover = {0: "moving", 1: "closed", 2: "open", 3: "error"}[self._cover]
        return {"device_id": self.device_id, "light_on": self.light_on and self.has_light,
                "brightness": self.brightness, "cover": cover if self.has_cover else "none",
                "panel": dataclasses.asdict(self.panel)}

    def _publish(self) -> None:
        """Write the state whole, never through a link: a new file of a fresh random name
        (created exclusively, mode 0600) renamed over the old one, so a link planted at the
        state file's name or beside it is replaced, not followed."""
        if self.state_file is None:
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{self.state_file.name}.", suffix=".tmp",
                                   dir=self.state_file.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(self.state()))
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- the pty --
    def start(self) -> "AlnitakEmulator":
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)      # no echo, no CR/LF translation: bytes as a USB port sends
        self.port = os.ttyname(self._slave)
        if self.link is not None:
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.symlink_to(self.port)
        self._publish()
        self._thread = threading.Thread(target=self._serve, name="alnitak emulator", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if self._tick():
                self._publish()
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 256)
            except OSError:          # nobody has the port open right now
                time.sleep(0.02)
                continue
            buffer += chunk
            while True:
                cut = min((i for i in (buffer.find(b"\r"), buffer.find(b"\n")) if i >= 0),
                          default=-1)
                if cut < 0:
                    break
                line, buffer = buffer[:cut], buffer[cut + 1:]
                if not line:
                    continue
                reply = self.respond(line.decode("ascii", errors="replace"))
                self._publish()
                if reply is not None:
                    os.write(self._master, reply.encode("ascii") + b"\n")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)   # no stale light for the simulated camera

    def __enter__(self) -> "AlnitakEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_state_file(link: str | Path) -> Path:
    """Where the emulator publishes its state unless told: LINK's name + '.state.json' in the
    user's private folder (see indical.user_dirs.private_dir), never a shared folder such as
    /tmp where another user could plant a link under that name."""
    from indical.user_dirs import private_dir
    return private_dir() / f"{Path(link).name}.state.json"


def main(argv: list[str] | None = None) -> None:
    """`indical-alnitak-emulator`: serve an emulated device until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description="Emulate an Alnitak Flip-Flat/Flat-Man on a "
                                     "pseudo-terminal, to try indical's alnitak driver.")
    parser.add_argument("--device-id", type=int, default=FLIP_FLAT,
                        help="99 Flip-Flat, 98 Flip-Mask, 10/15/19 Flat-Man (default 99)")
    parser.add_argument("--travel-s", type=float, default=2.0, help="cover travel time")
    parser.add_argument("--closed", action="store_true", help="start with the cover closed")
    parser.add_argument("--max-flux", type=float, default=PanelParams().max_flux_e_per_s,
                        help="light at full brightness, e-/s per pixel before optics "
                        "(default %(default)g)")
    parser.add_argument("--link", default="/tmp/indical-flipflat",
                        help="symlink to the pty, for the rig file's port (default %(default)s)")
    parser.add_argument("--state-file", default=None,
                        help="where to publish the state for the simulated camera "
                        "(default: LINK's name + .state.json in the user's private folder, "
                        "$XDG_RUNTIME_DIR/indical)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # clean up the link on `kill` too
    state = args.state_file or default_state_file(args.link)
    emulator = AlnitakEmulator(device_id=args.device_id, travel_s=args.travel_s,
                               cover_closed=args.closed, link=args.link, state_file=state,
                               panel=PanelParams(max_flux_e_per_s=args.max_flux))
    with emulator:
        print(f"Alnitak device id {args.device_id} on {emulator.port}, linked as {args.link}; "
              f"state in {state}. Ctrl-C stops it.", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
