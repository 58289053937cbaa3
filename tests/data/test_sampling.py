from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alt_lightning.data.sampling import ViewSpec, dense_indices, segment_indices, view_indices

FAST = settings(max_examples=150, deadline=None)

num_frames_st = st.integers(1, 3000)
t_st = st.integers(1, 48)
seed_st = st.integers(0, 2**32 - 1)


def _segment_bounds(n: int, t: int) -> list[tuple[int, int]]:
    """Segment s = [floor(s*n/t), floor((s+1)*n/t)), widened to one frame when empty."""
    return [(s * n // t, max((s + 1) * n // t, s * n // t + 1)) for s in range(t)]


# ------------------------------------------------------------------------------------------ segment


@FAST
@given(n=num_frames_st, t=t_st, train=st.booleans(), seed=seed_st)
def test_segment_properties(n, t, train, seed):
    idx = segment_indices(n, t, train=train, rng=np.random.default_rng(seed))
    assert len(idx) == t
    assert all(isinstance(i, int) and 0 <= i < n for i in idx)
    assert idx == sorted(idx)
    if n >= t:
        assert len(set(idx)) == t  # strictly increasing: one frame from each disjoint segment
    for i, (lo, hi) in zip(idx, _segment_bounds(n, t), strict=True):
        assert lo <= i < hi


@FAST
@given(n=num_frames_st, t=t_st, clips=st.integers(1, 5), data=st.data())
def test_segment_test_views_are_deterministic_and_differ_per_clip(n, t, clips, data):
    j = data.draw(st.integers(0, clips - 1))
    a = view_indices(n, t, j, clips)
    assert a == view_indices(n, t, j, clips) == segment_indices(n, t, train=False, clip_index=j, num_clips=clips)
    assert a == sorted(a) and len(a) == t and all(0 <= i < n for i in a)
    if n // t >= clips:  # every segment holds >= clips frames: all clips use different frames everywhere
        views = [view_indices(n, t, k, clips) for k in range(clips)]
        for pos in range(t):
            column = [v[pos] for v in views]
            assert column == sorted(column) and len(set(column)) == clips


def test_segment_known_values():
    assert segment_indices(80, 8, train=False) == [5, 15, 25, 35, 45, 55, 65, 75]  # centres
    assert segment_indices(10, 3, train=False) == [1, 4, 8]
    assert segment_indices(3, 8, train=False) == [0, 0, 0, 1, 1, 1, 2, 2]  # short video repeats, sorted
    assert segment_indices(1, 4, train=True, rng=np.random.default_rng(0)) == [0, 0, 0, 0]
    # 3 test clips: offsets 1/6, 1/2, 5/6 of each 10-frame segment.
    assert [view_indices(30, 3, j, 3) for j in range(3)] == [[1, 11, 21], [5, 15, 25], [8, 18, 28]]


def test_segment_training_is_random_but_reproducible():
    draws = {tuple(segment_indices(100, 8, train=True, rng=np.random.default_rng(s))) for s in range(20)}
    assert len(draws) > 15
    a = segment_indices(100, 8, train=True, rng=np.random.default_rng(7))
    assert a == segment_indices(100, 8, train=True, rng=np.random.default_rng(7))
    # Every frame of a segment can be drawn: segment 0 = frames 0..11, over many draws.
    rng = np.random.default_rng(1)
    firsts = {segment_indices(100, 8, train=True, rng=rng)[0] for _ in range(400)}
    assert firsts == set(range(12))


def test_segment_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_frames"):
        segment_indices(0, 8, train=False)
    with pytest.raises(ValueError, match="num_segments"):
        segment_indices(10, 0, train=False)
    with pytest.raises(ValueError, match="clip_index"):
        segment_indices(10, 2, train=False, clip_index=3, num_clips=3)


# -------------------------------------------------------------------------------------------- dense


@FAST
@given(
    n=num_frames_st,
    t=t_st,
    stride=st.integers(1, 16),
    train=st.booleans(),
    short=st.sampled_from(["loop", "clamp"]),
    seed=seed_st,
)
def test_dense_properties(n, t, stride, train, short, seed):
    idx = dense_indices(n, t, stride, train=train, rng=np.random.default_rng(seed), short=short)
    assert len(idx) == t
    assert all(isinstance(i, int) and 0 <= i < n for i in idx)
    span = (t - 1) * stride + 1
    if n >= span:
        assert all(b - a == stride for a, b in itertools.pairwise(idx))
        assert 0 <= idx[0] <= n - span
    elif short == "clamp":
        assert idx == sorted(idx) and idx[-1] == n - 1 and idx[0] == 0
    else:
        assert idx == [(k * stride) % n for k in range(t)]


@FAST
@given(n=num_frames_st, t=t_st, stride=st.integers(1, 8), clips=st.integers(1, 5))
def test_dense_test_clips_are_deterministic_and_spread(n, t, stride, clips):
    views = [view_indices(n, t, j, clips, mode="dense", stride=stride) for j in range(clips)]
    assert views == [view_indices(n, t, j, clips, mode="dense", stride=stride) for j in range(clips)]
    starts = [v[0] for v in views]
    assert starts == sorted(starts)
    n_starts = n - (t - 1) * stride
    if n_starts >= clips:
        assert len(set(starts)) == clips


def test_dense_known_values():
    assert dense_indices(100, 8, 4, train=False) == list(range(36, 65, 4))  # centred: 72 starts -> 36
    assert [view_indices(100, 8, j, 3, "dense", 4)[0] for j in range(3)] == [12, 36, 60]
    assert dense_indices(10, 8, 4, train=False) == [0, 4, 8, 2, 6, 0, 4, 8]
    assert dense_indices(10, 8, 4, train=False, short="clamp") == [0, 4, 8, 9, 9, 9, 9, 9]
    starts = {dense_indices(20, 4, 2, train=True, rng=np.random.default_rng(s))[0] for s in range(200)}
    assert starts == set(range(14))  # every valid start 0..20-7


def test_dense_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        dense_indices(10, 4, 0, train=False)
    with pytest.raises(ValueError, match="short"):
        dense_indices(10, 4, 1, train=False, short="pad")
    with pytest.raises(ValueError, match="stride"):
        view_indices(10, 4, 0, 1, mode="dense")
    with pytest.raises(ValueError, match="mode"):
        view_indices(10, 4, 0, 1, mode="uniform")


# -------------------------------------------------------------------------------------------- views


def test_view_spec():
    spec = ViewSpec(num_clips=3, num_crops=2)
    assert spec.num_views == 6
    assert [spec.split(v) for v in range(6)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert ViewSpec().num_views == 1
    with pytest.raises(ValueError):
        spec.split(6)
    with pytest.raises(ValueError):
        ViewSpec(num_clips=0)
