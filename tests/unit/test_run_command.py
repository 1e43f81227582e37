"""`indical run` and `indical demo --builtin`: frames written, log beside them, clear errors."""

from pathlib import Path

from click.testing import CliRunner

from indical.cli import main
from indical.sequence.log import read_log

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"

SMALL_RIG = """
[clock]
start = "2026-03-20T15:00:00+00:00"
[camera]
driver = "sim"
width = 128
height = 96
[panel]
driver = "sim"
[flats]
max_exposure_s = 30.0
"""


def test_run_writes_frames_and_a_log_beside_them(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text(SMALL_RIG)
    out = tmp_path / "frames"
    result = CliRunner().invoke(main, ["run", str(SEQUENCES / "panel_flats.py"), "--rig", str(rig),
                                       "-o", str(out), "--store", str(tmp_path / "s.sqlite"),
                                       "--set", "FLATS_PER_FILTER=2",
                                       "--set", "DARK_FLATS_PER_EXPOSURE=1"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 frames" in result.output            # no wheel: one filter, 2 flats + 1 dark
    logs = list(out.glob("exposures-*.jsonl"))
    assert len(logs) == 1
    kinds = [e["kind"] for e in read_log(logs[0])]
    assert kinds.count("darkflat") == 1 and "bias" in kinds


def test_unknown_setting_is_named(tmp_path):
    result = CliRunner().invoke(main, ["run", str(SEQUENCES / "panel_flats.py"),
                                       "-o", str(tmp_path), "--set", "FLATS=3"])
    assert result.exit_code == 2
    assert "no setting 'FLATS'" in result.output and "FLATS_PER_FILTER" in result.output


def test_a_shipped_sequence_is_found_by_its_name(tmp_path, monkeypatch):
    """As after a wheel install: no sequences/ folder here, the README's command still runs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rig.toml").write_text(SMALL_RIG)
    result = CliRunner().invoke(main, ["run", "panel_flats", "--rig", "rig.toml", "-o", "frames",
                                       "--store", "s.sqlite", "--set", "FLATS_PER_FILTER=1",
                                       "--set", "DARK_FLATS_PER_EXPOSURE=1"])
    assert result.exit_code == 0, result.output
    assert "panel_flats is not here: running the shipped sequence" in result.output
    assert "wrote 2 frames" in result.output


def test_an_unknown_name_lists_the_shipped_sequences(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "sequences/panel_flat.py"])
    assert result.exit_code == 2
    assert "panel_flat.py: no such file, nor a shipped sequence" in result.output
    assert "dark_library.py, panel_flats.py, relay_panel_flats.py, twilight_flats.py" \
        in " ".join(result.output.split())


def test_missing_sequence_file(tmp_path):
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.py")])
    assert result.exit_code == 2 and "nope.py: no such sequence file" in result.output


def test_bad_flats_key_names_the_key(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text(SMALL_RIG + "min_exposure = 2\n")
    result = CliRunner().invoke(main, ["run", str(SEQUENCES / "panel_flats.py"), "--rig", str(rig),
                                       "-o", str(tmp_path / "f")])
    assert result.exit_code == 2
    assert "[flats] min_exposure: unknown key" in result.output


def test_demo_in_process(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--builtin", "-o", str(tmp_path), "-n", "2"])
    assert result.exit_code == 0, result.output
    for name in ("L", "R", "G", "B", "Ha"):
        assert f"{name}:" in result.output
    flats = [p for p in tmp_path.rglob("flat_*.fits") if "twilight" not in p.parts]
    assert len(flats) == 10
    assert "exposure log" in result.output
    # then a simulated dusk: twilight flats in three filters beside the panel flats
    sky = [p for p in (tmp_path / "twilight").rglob("flat_*.fits") if "rejected" not in p.parts]
    assert len(sky) == 9 and "twilight flats per filter" in result.output


def test_loading_a_sequence_writes_no_bytecode_beside_it(tmp_path, monkeypatch):
    """The user's sequence folder gets no __pycache__, whatever PYTHONDONTWRITEBYTECODE says."""
    import sys

    from indical.sequence.engine import load_sequence

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    seq = tmp_path / "mine.py"
    seq.write_text("import sys\n\nFLATS = 3\nSEEN = sys.dont_write_bytecode\n\n"
                   "def run(obs):\n    pass\n")
    module = load_sequence(seq, {"FLATS": 4})
    assert module.FLATS == 4
    assert not (tmp_path / "__pycache__").exists()
    # the process-wide switch is never touched: other threads' imports go on as they were
    assert module.SEEN is False and sys.dont_write_bytecode is False


def test_a_frame_that_cant_be_written_ends_the_run_with_an_error_naming_it(tmp_path):
    """Frames are written behind the sequence (write_behind.py): a failed write still ends the
    run with an error naming the file, and the run's frame count leaves it out."""
    rig = tmp_path / "rig.toml"
    rig.write_text(SMALL_RIG)
    out = tmp_path / "frames"
    night = out / "2026-03-20"                     # the simulated clock's night
    out.mkdir()
    night.write_text("a file where the night's folder should be")
    result = CliRunner().invoke(main, ["run", str(SEQUENCES / "panel_flats.py"), "--rig", str(rig),
                                       "-o", str(out), "--store", str(tmp_path / "s.sqlite"),
                                       "--log", str(tmp_path / "log.jsonl"),
                                       "--set", "FLATS_PER_FILTER=2",
                                       "--set", "DARK_FLATS_PER_EXPOSURE=1"])
    assert result.exit_code != 0
    assert str(night) in result.output
    assert "wrote 3 frames" not in result.output
