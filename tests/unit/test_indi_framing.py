"""The INDI stream framer hands on every whole message as soon as its last byte arrives,
whatever the chunking, so no command waits for the next one (Debian's expat defers parsing)."""

from __future__ import annotations

import base64

import pytest

from indical.simulators.indi import protocol as P
from indical.xml_stream import ElementFramer

STREAM = (b'<?xml version="1.0"?>\n<getProperties version="1.7"/>\n'
          b'<newNumberVector device="Cam" name="CCD_EXPOSURE">'
          b'<oneNumber name="CCD_EXPOSURE_VALUE"> 1.5 </oneNumber></newNumberVector>\n'
          b'<message device="Box" message="level &gt; 3 and \'quoted\' > fine" />'
          b"<setSwitchVector device='Box' name='FLAT_LIGHT_CONTROL' state='Ok' message=\"a>b\">"
          b'<oneSwitch name="FLAT_LIGHT_ON">On</oneSwitch>'
          b'<oneSwitch name="FLAT_LIGHT_OFF">Off</oneSwitch></setSwitchVector>')
TAGS = ["getProperties", "newNumberVector", "message", "setSwitchVector"]


@pytest.mark.parametrize("size", range(1, 60))
def test_every_message_comes_out_at_once_whatever_the_chunking(size):
    framer = ElementFramer()
    got = []
    for i in range(0, len(STREAM), size):
        got += framer.feed(STREAM[i:i + size])
    # all four are out without any further byte: nothing is held back
    assert [g.split(b" ", 1)[0].lstrip(b"<") for g in got] == [t.encode() for t in TAGS]


def test_parse_stream_yields_members_and_attributes_with_quotes_holding_angle_brackets():
    parts = [STREAM[i:i + 3] for i in range(0, len(STREAM), 3)] + [b""]
    msgs = list(P.parse_stream(iter(parts).__next__))
    assert [m.tag for m in msgs] == TAGS
    assert msgs[1].members == {"CCD_EXPOSURE_VALUE": "1.5"}
    assert msgs[2].attrs["message"] == "level > 3 and 'quoted' > fine"
    assert msgs[3].attrs["message"] == "a>b" and msgs[3].members["FLAT_LIGHT_ON"] == "On"


def test_a_large_blob_message_in_many_chunks_arrives_whole():
    payload = base64.b64encode(bytes(range(256)) * 4096)   # 1 MiB of data
    msg = (b'<setBLOBVector device="Cam" name="CCD1"><oneBLOB name="CCD1" size="1048576" '
           b'format=".fits">' + payload + b"</oneBLOB></setBLOBVector>")
    framer = ElementFramer()
    out = []
    for i in range(0, len(msg), 65536):
        out += framer.feed(msg[i:i + 65536])
    assert out == [msg]


def test_a_broken_message_is_skipped_and_the_next_one_still_read(capsys):
    stream = b'<newSwitchVector device="A" name="B"><oneSwitch name="X">On</oops></newSwitchVector>' \
             b'<getProperties version="1.7"/>'
    msgs = list(P.parse_stream(iter([stream, b""]).__next__))
    assert [m.tag for m in msgs] == ["getProperties"]
    assert "unreadable INDI message skipped" in capsys.readouterr().err
