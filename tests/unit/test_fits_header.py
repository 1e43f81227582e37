"""indical's own FITS header reader and image writer, checked against astropy both ways."""

from __future__ import annotations

import gzip
import io
import math
import random

import numpy as np
import pytest
from astropy.io import fits

from indical.calib.rawio import open_raw
from indical.errors import FitsError
from indical.fits.header import Card, Header, HeaderError, format_card, parse_card, parse_header, write_image

CARDS = [
    ("IMAGETYP", "Flat Field", "Type of image"),
    ("EXPTIME", 1.5, "[s] Exposure time"),
    ("TINY", 1.25e-05, ""),
    ("HUGE", 3.0e+20, "big"),
    ("NEGZERO", -0.0, ""),
    ("PI", math.pi, "many digits"),
    ("XBINNING", 2, ""),
    ("BIGINT", 2**40, ""),
    ("NEGINT", -17, ""),
    ("FLAG", True, "a logical"),
    ("OFF", False, ""),
    ("QUOTE", "it's", "a quote inside"),
    ("PADDED", "  lead", "leading blanks are kept"),
    ("EMPTY", "", ""),
    ("LONGSTR", "master_flat_" + "x" * 150 + "_end.fits", ""),
    ("LONGQ", "'" * 40 + "a" * 50, ""),
    ("DATE-OBS", "2026-11-21T18:00:00.000", "UTC start"),
]


def _astropy_header() -> fits.Header:
    h = fits.Header()
    for key, value, comment in CARDS:
        h[key] = (value, comment) if comment else value
    h["HIERARCH ESO DET DIT"] = 2.5
    h.add_history("a history line " + "long " * 30)
    h.add_comment("a comment")
    return h


def test_parse_reads_what_astropy_writes():
    ours = parse_header(_astropy_header().tostring().encode("ascii"))
    theirs = _astropy_header()
    for key, value, _ in CARDS:
        assert ours[key] == theirs[key], key
        assert type(ours[key]) is type(theirs[key]), key
    assert ours["ESO DET DIT"] == 2.5
    assert ours.get("HIERARCH ESO DET DIT") == 2.5
    assert ours["EXPTIME"] == 1.5 and ours.comment("EXPTIME") == "[s] Exposure time"
    assert "".join(ours["HISTORY"]) == "".join(theirs["HISTORY"])
    assert ours["COMMENT"] == ["a comment"]
    assert "exptime" in ours and ours.get("exptime") == 1.5  # case-insensitive, as astropy


def test_write_image_is_read_back_by_astropy_exactly(tmp_path):
    h = Header(CARDS)
    h["HIERARCH ESO DET DIT"] = (2.5, "HIERARCH card")
    h.add_history("a history line " + "long " * 30)
    h["BZERO"] = 32768  # layout and scaling cards are the writer's, never copied
    data = np.random.default_rng(1).normal(1.0, 0.1, (37, 53)).astype(np.float32)
    path = tmp_path / "m.fits"
    with open(path, "wb") as fh:
        write_image(fh, data, h)
    assert path.stat().st_size % 2880 == 0
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert len(hdul) == 1
        got = hdul[0].header
        np.testing.assert_array_equal(hdul[0].data, data)
        assert hdul[0].data.dtype == np.dtype(">f4")
    assert "BZERO" not in got and got["BITPIX"] == -32
    for key, value, comment in CARDS:
        assert got[key] == value, key
        assert type(got[key]) is type(value), key
        if comment and len(str(value)) < 40:
            assert got.comments[key] == comment, key
    assert math.copysign(1.0, got["NEGZERO"]) == -1.0
    assert got["ESO DET DIT"] == 2.5
    assert "".join(got["HISTORY"]) == ("a history line " + "long " * 30).rstrip()


@pytest.mark.parametrize("dtype", [np.int16, np.float64, np.uint8, np.int32])
def test_write_image_other_types(tmp_path, dtype):
    data = (np.arange(12 * 7).reshape(12, 7) % 100).astype(dtype)
    buf = io.BytesIO()
    write_image(buf, data, Header())
    with fits.open(io.BytesIO(buf.getvalue())) as hdul:
        hdul.verify("exception")
        np.testing.assert_array_equal(hdul[0].data, data)


def test_floats_round_trip_exactly():
    rng = random.Random(5)
    values = [rng.uniform(-1e6, 1e6) for _ in range(300)]
    values += [10.0 ** rng.randint(-300, 300) * rng.random() for _ in range(300)]
    values += [5e-324, 1.7976931348623157e308, 1e-5, 100.0, 1e16, 123456789012345680.0]
    for v in values:
        (line,) = format_card(Card("X", v))
        assert len(line) == 80
        assert parse_card(line).value == v, line
        assert fits.Card.fromstring(line).value == v, line


def test_numpy_scalars_are_written_as_numbers():
    (line,) = format_card(Card("N", np.int64(7)))
    assert parse_card(line).value == 7
    (line,) = format_card(Card("F", np.float32(0.5)))
    assert parse_card(line).value == 0.5


def test_dialect_values_astropy_tolerates():
    cards = [
        "EXPTIME =              1.0D+01 / Fortran exponent",
        "CPLX    =           (1.5, -2.0)",
        "UNDEF   =                      / no value",
        "ODD     = 1,5                  / a comma: kept as text",
        "NOSPACE =                   12",
        "SHORT   = 'abc'",
    ]
    h = parse_header(("".join(c.ljust(80) for c in cards) + "END".ljust(80)).encode())
    assert h["EXPTIME"] == 10.0
    assert h["CPLX"] == complex(1.5, -2.0)
    assert h["UNDEF"] is None and "UNDEF" in h
    assert h["ODD"] == "1,5"
    assert h["NOSPACE"] == 12
    assert h["SHORT"] == "abc"


def test_broken_headers_say_which_card():
    bad = ("SIMPLE  =                    T".ljust(80) + "OBJECT  = 'no closing quote".ljust(80)
           + "END".ljust(80)).encode()
    with pytest.raises(HeaderError, match=r"card 2 \(OBJECT\).*closing quote"):
        parse_header(bad)
    with pytest.raises(HeaderError, match="no END"):
        parse_header("SIMPLE  =                    T".ljust(80).encode())


def test_values_that_cannot_be_written_name_the_key():
    with pytest.raises(HeaderError, match="LEVEL"):
        format_card(Card("LEVEL", float("nan")))
    with pytest.raises(HeaderError, match="WHAT"):
        format_card(Card("WHAT", object()))


def test_header_behaves_like_a_mapping():
    h = Header()
    h["A"] = (1, "first")
    h["B"] = 2
    h["A"] = 3  # keeps its place and comment
    assert h.keys() == ["A", "B"] and h["A"] == 3 and h.comment("A") == "first"
    assert h.pop("A") == 3 and "A" not in h and h.pop("A", "gone") == "gone"
    assert h["B"] == 2
    with pytest.raises(KeyError, match="'C'"):
        h["C"]
    assert h.get("C", 9) == 9


# -- rawio through indical.fits.header ---------------------------------------------------------
def _image() -> np.ndarray:
    return (np.arange(40 * 30).reshape(30, 40) % 4000).astype(np.uint16)


def _raw_values(path):
    with open_raw(path) as im:
        values = im.raw.astype(np.float64) * im.bscale + im.bzero
        return values, im.header


def test_extension_image_gets_the_primary_keywords(tmp_path):
    primary = fits.PrimaryHDU()
    primary.header["IMAGETYP"] = "Flat Field"
    primary.header["EXPTIME"] = 2.0
    ext = fits.ImageHDU(_image(), name="SCI")
    path = tmp_path / "ext.fits"
    fits.HDUList([primary, fits.BinTableHDU.from_columns([fits.Column("a", "J", array=[1, 2])]),
                  ext]).writeto(path)
    values, header = _raw_values(path)
    np.testing.assert_array_equal(values, _image())
    assert header["IMAGETYP"] == "Flat Field" and header["EXPTIME"] == 2.0


def test_compressed_and_gzipped_files_go_through_astropy(tmp_path):
    comp = tmp_path / "c.fits.fz"
    hdu = fits.CompImageHDU(_image())
    hdu.header["IMAGETYP"] = "Dark Frame"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(comp)
    values, header = _raw_values(comp)
    np.testing.assert_array_equal(values, _image())
    assert header["IMAGETYP"] == "Dark Frame"

    plain = tmp_path / "p.fits"
    fits.PrimaryHDU(_image()).writeto(plain)
    gz = tmp_path / "p.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    values, _ = _raw_values(gz)
    np.testing.assert_array_equal(values, _image())


def test_cubes_with_one_plane_are_images_and_colour_cubes_are_refused(tmp_path):
    one = tmp_path / "one.fits"
    fits.PrimaryHDU(_image()[None]).writeto(one)
    values, _ = _raw_values(one)
    np.testing.assert_array_equal(values, _image())
    rgb = tmp_path / "rgb.fits"
    fits.PrimaryHDU(np.stack([_image()] * 3)).writeto(rgb)
    with pytest.raises(FitsError, match=r"rgb\.fits.*3 axes"):
        _raw_values(rgb)


def test_files_that_are_not_images(tmp_path):
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(),
                  fits.BinTableHDU.from_columns([fits.Column("a", "J", array=[1])])]).writeto(table)
    with pytest.raises(FitsError, match=r"table\.fits.*no 2-D image"):
        _raw_values(table)
    text = tmp_path / "notes.fits"
    text.write_text("just some notes\n" * 300)
    with pytest.raises(FitsError, match=r"notes\.fits.*not a readable FITS file"):
        _raw_values(text)
    endless = tmp_path / "endless.fits"
    endless.write_bytes(("SIMPLE  =                    T".ljust(80) + "COMMENT x".ljust(80) * 35)
                        .encode() * 2)
    with pytest.raises(FitsError, match=r"endless\.fits.*not a readable FITS file"):
        _raw_values(endless)


@pytest.mark.parametrize("value", ["a'", "'", "''", "x'" * 50, "&", "ab&", "'&'" * 30, "a' b",
                                   "x" * 200 + "'", "'" * 41 + "a" * 50, "  lead"])
def test_strings_with_quotes_both_ways(value):
    h = fits.Header()
    h["K"] = value
    assert parse_header(h.tostring().encode())["K"] == value  # astropy splits quote pairs
    text = "".join(format_card(Card("K", value))) + "END".ljust(80)
    assert fits.Header.fromstring(text)["K"] == value
    assert parse_header(text.encode())["K"] == value


def test_utf8_header_text_reads_as_written_and_writes_as_ascii(tmp_path):
    """A capture program's UTF-8 'Hα' read as 'HÎ±' before, and a master got FILTER 'H??'."""
    from indical.fits.header import format_card, parse_header, Card
    card = b"FILTER  = '" + "Hα".encode() + b"'"
    block = card.ljust(80) + b"END".ljust(80)
    header = parse_header(block.ljust(2880))
    assert header["FILTER"] == "Hα"
    bad = b"FILTER  = 'H\xe1\xff'".ljust(80) + b"END".ljust(80)
    assert parse_header(bad.ljust(2880))["FILTER"] == "H\xe1\xff"   # not UTF-8: as read
    assert format_card(Card("FILTER", "Hα", ""))[0].split("'")[1].rstrip() == "Ha"
    assert format_card(Card("FILTER", "Hβ café", ""))[0].split("'")[1].rstrip() == "Hb cafe"


def test_history_and_comment_cards_are_found_like_astropy_finds_them():
    """`get("HISTORY")` gave the default even with HISTORY cards present."""
    h = Header()
    assert "HISTORY" not in h and h.get("HISTORY", "none") == "none"
    h.add_history("subtracted master dark")
    h.add_history("divided by master flat")
    h.add_comment("a comment")
    assert "HISTORY" in h and "history" in h and "COMMENT" in h
    assert h.get("HISTORY") == ["subtracted master dark", "divided by master flat"]
    assert h.get("COMMENT") == ["a comment"]
    ours = parse_header(b"".join(line.encode().ljust(80) for c in h.cards
                                 for line in format_card(c)) + b"END".ljust(80), where="test")
    assert ours.get("HISTORY") == ["subtracted master dark", "divided by master flat"]
