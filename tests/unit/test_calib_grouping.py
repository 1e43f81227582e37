"""Grouping: configuration keys, exposure tolerance and deterministic temperature clusters."""

from __future__ import annotations

import random

import pytest

from indical.calib.grouping import GroupingOptions, cluster_values, group_frames
from indical.calib.ingest import FrameRecord
from indical.frame import Binning, FrameType
from indical.testing.frames import synthetic_meta


def rec(i: int, kind=FrameType.DARK, *, w=64, h=48, **meta) -> FrameRecord:
    return FrameRecord(path=f"/f/{i:03d}.fits", sha256=str(i), meta=synthetic_meta(kind, index=i, **meta),
                       width=w, height=h, median_adu=100.0, mad_adu=2.0, id=i)


@pytest.mark.parametrize("values, width, labels", [
    ([], 1.0, []),
    ([5.0], 1.0, [0]),
    ([0.0, 0.5, 1.0, 1.5], 1.0, [0, 0, 0, 0]),      # a chain closer than the width stays together
    ([0.0, 1.01], 1.0, [0, 1]),
    ([0.0, 1.0], 1.0, [0, 0]),                      # exactly the width: same cluster
    ([-10.2, -9.8, -5.1, -4.9, 0.0], 1.0, [0, 0, 1, 1, 2]),
    ([3.0, -3.0, 3.1], 0.5, [1, 0, 1]),
])
def test_cluster_values(values, width, labels):
    assert cluster_values(values, width) == labels


def test_cluster_values_is_order_independent():
    rng = random.Random(4)
    values = [rng.uniform(-20, 5) for _ in range(200)]
    labels = cluster_values(values, 0.3)
    order = list(range(200))
    rng.shuffle(order)
    shuffled = cluster_values([values[i] for i in order], 0.3)
    assert [labels[i] for i in order] == shuffled
    # neighbours within a cluster never differ by more than the width
    for lab in set(labels):
        vs = sorted(v for v, l in zip(values, labels) if l == lab)
        assert all(b - a <= 0.3 for a, b in zip(vs, vs[1:]))


def test_darks_group_by_exposure_with_tolerance_and_temperature():
    records = [rec(i, exposure_s=60.0 * (1 + 0.001 * (i % 3)), temperature_c=-10.0 + 0.1 * i)
               for i in range(6)]
    records += [rec(10 + i, exposure_s=120.0, temperature_c=-10.0) for i in range(4)]
    records += [rec(20 + i, exposure_s=60.0, temperature_c=0.0) for i in range(3)]
    big, small = group_frames(records, GroupingOptions(temp_width_c=1.0, min_group=4))
    sizes = sorted(len(g.records) for g in big)
    assert sizes == [4, 6]
    assert [len(g.records) for g in small] == [3]
    sixty = next(g for g in big if len(g.records) == 6)
    assert sixty.key.exposure_s == pytest.approx(60.06, rel=1e-3)
    assert sixty.temperature_c == pytest.approx(-9.75)


def test_flats_group_by_filter_not_exposure_and_size_splits():
    records = [rec(i, FrameType.FLAT, filter="R", exposure_s=1.0 + i) for i in range(3)]
    records += [rec(5 + i, FrameType.FLAT, filter="B") for i in range(2)]
    records += [rec(9, FrameType.FLAT, filter="R", w=32, h=32)]
    big, _ = group_frames(records, GroupingOptions())
    assert sorted((g.key.filter, g.key.config.width, len(g.records)) for g in big) == \
        [("B", 64, 2), ("R", 32, 1), ("R", 64, 3)]
    # without 'filter' and 'size' the flats all fall together
    big, _ = group_frames(records, GroupingOptions.parse("exposure,temp:5"))
    assert [len(g.records) for g in big] == [6]


def test_gain_offset_binning_camera_always_split():
    records = [rec(0), rec(1, gain=200.0), rec(2, offset=30.0), rec(3, binning=Binning(2, 2)),
               rec(4, camera="Other"), rec(5, readout_mode="HDR")]
    big, _ = group_frames(records, GroupingOptions())
    assert len(big) == 6


def test_frames_without_temperature_form_their_own_group():
    records = [rec(0, temperature_c=None), rec(1, temperature_c=-10.0)]
    big, _ = group_frames(records, GroupingOptions())
    assert len(big) == 2


@pytest.mark.parametrize("text, problem", [
    ("size,colour", "unknown grouping key"),
    ("temp:warm", "temp:WIDTH needs a number"),
    ("temp:0", "must be positive"),
])
def test_bad_grouping_text(text, problem):
    with pytest.raises(ValueError, match=problem):
        GroupingOptions.parse(text)
