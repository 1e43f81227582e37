"""The light goes off however the process ends: SIGTERM, SIGHUP, an uncaught error.

A child process opens a rig, lights the panel and never switches it off itself; the parent sees
the panel's physical state: the Alnitak emulator (in the parent, on a pty) or the mock pin level
the child reports as its very last act."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from indical.simulators.alnitak_emulator import AlnitakEmulator

CHILD_ALNITAK = """
import sys, time
from indical.rig import open_rig, parse_rig
port, ending = sys.argv[1], sys.argv[2]
rig = open_rig(parse_rig(f'[panel]\\ndriver = "alnitak"\\nport = "{port}"\\n', "child.toml"))
rig.panel.on()
print("lit", flush=True)
if ending == "error":
    raise RuntimeError("a bug in a sequence")
time.sleep(60)
"""

CHILD_GPIO = """
import atexit, sys, time
from gpiozero import Device
def report():          # registered first, so it runs after indical's own exit guard
    print("pin17", Device.pin_factory.pin(17).state, flush=True)
atexit.register(report)
from indical.rig import open_rig, parse_rig
rig = open_rig(parse_rig('[panel]\\ndriver = "gpio"\\npin = 17\\nactive_high = false\\n'
                         'pin_factory = "mock"\\n', "child.toml"))
rig.panel.on()
print("lit", Device.pin_factory.pin(17).state, flush=True)
if sys.argv[1] == "error":
    raise RuntimeError("a bug in a sequence")
time.sleep(60)
"""


def _default_hangup() -> None:
    # The child starts as in a login session, where SIGHUP ends a process. Under nohup (a CI
    # job, a detached shell) it would inherit SIGHUP ignored, which indical respects by design:
    # an ignored hangup is someone's wish that the process outlive its terminal.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_hangup)


def _end(proc: subprocess.Popen, ending: str) -> tuple[str, str]:
    first = proc.stdout.readline()
    assert first.startswith("lit"), proc.stderr.read()
    if ending in ("SIGTERM", "SIGHUP"):
        proc.send_signal(getattr(signal, ending))
    # Read through the same buffered stream as readline() above (communicate() would bypass
    # its buffer and lose lines already read ahead); a timer ends a child that hangs.
    killer = threading.Timer(30, proc.kill)
    killer.start()
    try:
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.wait()
    finally:
        killer.cancel()
        proc.stdout.close()
        proc.stderr.close()
    return first + out, err


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGHUP", "error"])
def test_alnitak_light_goes_off(ending):
    with AlnitakEmulator(device_id=19) as em:        # a Flat-Man: no cover to close first
        proc = _child(CHILD_ALNITAK, em.port, ending)
        try:
            out, err = _end(proc, ending)
        finally:
            proc.kill()
        assert em.received.count(">L000") == 1
        assert em.received[-1] == ">D000", (em.received, err)
        assert not em.light_on
        assert proc.returncode != 0


@pytest.mark.parametrize("ending", ["SIGTERM", "error"])
def test_gpio_relay_goes_off(ending):
    proc = _child(CHILD_GPIO, ending)
    try:
        out, err = _end(proc, ending)
    finally:
        proc.kill()
    lines = out.split("\n")
    assert lines[0] == "lit 0.0", out + err              # active-low: lit is a low pin
    assert "pin17 1.0" in lines, out + err               # high again: relay released
    if ending == "SIGTERM":
        assert proc.returncode == 128 + signal.SIGTERM


CHILD_OWN_HANDLER = """
import os, signal, sys, time
def theirs(signum, frame):          # an application's own SIGTERM handler, installed first
    # os.write, not print: the signal may arrive while the main thread is inside print()
    os.write(1, b"their handler ran\\n")
    os._exit(3)
signal.signal(signal.SIGTERM, theirs)
from indical.rig import open_rig, parse_rig
rig = open_rig(parse_rig(f'[panel]\\ndriver = "alnitak"\\nport = "{sys.argv[1]}"\\n', "c.toml"))
rig.panel.on()
print("lit", flush=True)
time.sleep(60)
"""


def test_an_existing_signal_handler_still_runs_after_the_light_is_off():
    with AlnitakEmulator(device_id=19) as em:
        proc = _child(CHILD_OWN_HANDLER, em.port)
        try:
            out, err = _end(proc, "SIGTERM")
        finally:
            proc.kill()
        assert "their handler ran" in out, out + err
        assert proc.returncode == 3
        assert em.received[-1] == ">D000" and not em.light_on


def test_an_ignored_hangup_is_respected_and_the_light_still_goes_off_at_the_end():
    """Started under nohup, a sequence outlives its terminal: SIGHUP leaves it running and lit;
    when it is ended later (SIGTERM), the light goes off."""
    import time

    with AlnitakEmulator(device_id=19) as em:
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD_ALNITAK), em.port,
                                 "SIGTERM"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        try:
            assert proc.stdout.readline().startswith("lit")
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert proc.poll() is None and em.light_on
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            proc.kill()
            proc.stdout.close()
            proc.stderr.close()
        assert em.received[-1] == ">D000" and not em.light_on
