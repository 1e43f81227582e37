"""The engine's Ctrl-C handling, in-process: the first SIGINT stops the sequence, later ones
during the clean-up are held, and the previous handler is restored afterwards."""

import os
import signal
from pathlib import Path

from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sequence.trained import TrainedStore
from indical.sinks import FitsFolderSink

RIG = """
[clock]
start = "2026-03-20T15:00:00+00:00"
[camera]
driver = "sim"
width = 64
height = 48
[panel]
driver = "sim"
[cover]
driver = "sim"
"""


def test_first_sigint_stops_second_is_held_during_cleanup(tmp_path: Path):
    seq = tmp_path / "interrupt_me.py"
    seq.write_text('''
import os, signal
COVER_ON_EXIT = "open"
def run(obs):
    obs.close_cover()
    obs.light_on()
    os.kill(os.getpid(), signal.SIGINT)       # Ctrl-C in the middle of the run
    raise AssertionError("the run went on after Ctrl-C")
''')
    before = signal.getsignal(signal.SIGINT)
    with open_rig(parse_rig(RIG, "rig")) as rig:
        cover = rig.cover
        original_open = cover.open

        def impatient_open(**kw):              # a second Ctrl-C while the cover moves
            os.kill(os.getpid(), signal.SIGINT)
            original_open(**kw)
        cover.open = impatient_open
        said = []
        result = run_sequence(seq, rig, FitsFolderSink(tmp_path / "f"),
                              log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "t.sqlite"), say=said.append)
        assert result.interrupted and result.error is None
        assert not rig.panel.is_on() and cover.state().value == "open"
    assert any("already stopping" in m for m in said)
    assert signal.getsignal(signal.SIGINT) is before
