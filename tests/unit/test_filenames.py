"""File names from header text: safe characters only, distinct values stay distinct, and
outputs stay inside their folder."""

from __future__ import annotations

import pytest

from indical.filenames import UnsafePath, path_inside, safe_name


@pytest.mark.parametrize("text", ["L", "Ha", "OIII", "R+G", "Clear-2", "1.25in"])
def test_plain_names_are_kept(text):
    assert safe_name(text) == text


@pytest.mark.parametrize("text", ["x/../../../../name", "R/G", "..", ".hidden", "a\\b",
                                  "Hα", "", " ", "a_b", "-rf", "x" * 300, "\x00nul",
                                  "con:", "a\nb"])
def test_unsafe_text_becomes_a_safe_name(text):
    name = safe_name(text)
    assert name and len(name) <= 40
    assert "/" not in name and "\\" not in name and "_" not in name
    assert not name.startswith((".", "-"))
    assert all(c.isascii() and (c.isalnum() or c in ".+-") for c in name)


def test_distinct_values_stay_distinct():
    values = ["R/G", "R-G", "R G", "R:G", "Hα", "Hβ", "", " ", "x" * 60, "x" * 61, "..", "."]
    names = [safe_name(v) for v in values]
    assert len(set(names)) == len(values)


def test_path_inside_refuses_escapes(tmp_path):
    assert path_inside(tmp_path, "master.fits") == tmp_path / "master.fits"
    for bad in ("../x.fits", "a/b.fits", "..", "", "/etc/passwd"):
        with pytest.raises(UnsafePath):
            path_inside(tmp_path, bad)
    (tmp_path / "link.fits").symlink_to(tmp_path.parent / "outside.fits")
    with pytest.raises(UnsafePath, match="outside"):
        path_inside(tmp_path, "link.fits")
