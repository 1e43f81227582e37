"""User folders follow XDG everywhere: the library, trained settings and compiled helpers."""

from __future__ import annotations

from pathlib import Path


def test_every_user_folder_follows_xdg(tmp_path, monkeypatch):
    from indical.calib.library import default_library_path
    from indical.sequence.trained import default_store_path
    from indical.simulators.indi import loopback
    monkeypatch.delenv("INDICAL_LIBRARY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_library_path() == tmp_path / "data" / "indical" / "library" / "library.sqlite"
    assert default_store_path() == tmp_path / "data" / "indical" / "trained_flats.sqlite"
    assert loopback.cache_dir() == tmp_path / "cache" / "indical"


def test_library_variable_still_wins(tmp_path, monkeypatch):
    from indical.calib.library import default_library_path
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("INDICAL_LIBRARY", str(tmp_path / "mine.sqlite"))
    assert default_library_path() == Path(tmp_path / "mine.sqlite")


def test_no_hand_written_folder_logic_left():
    """One place decides the user's folders (indical/user_dirs.py, through platformdirs)."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("indical", "drivers", "simulators", "sequences"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if any(s in text for s in ('".local"', '".cache"', "XDG_DATA_HOME\")",
                                       "XDG_CACHE_HOME\")")):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
