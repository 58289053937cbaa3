"""VideoDataset with bad videos mixed in: training redraws (epoch length unchanged), evaluation counts failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from alt_lightning.data.dataset import BadFileLog, SamplingConfig, VideoDataset, worker_init
from alt_lightning.data.parsers import missing_reason, parse_path_label_list
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.transforms import ClipTransform
from alt_lightning.lightning.module import aggregate_views

#: file name -> reason the bad-file log must give.
BAD_REASONS = {
    "empty.mp4": "empty file",
    "garbage.mp4": "undecodable",
    "audio.wav": "no video stream",
    "zero.avi": "zero frames",
    "half.mp4": "undecodable",  # mp4 cut in half: its index (moov atom, at the end) is gone
    "missing.mp4": "missing file",
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, vt) -> dict[str, Path]:
    """One file per kind of damage, plus a truncated mp4 that still decodes (``clamped.mp4``)."""
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    vt.write_audio(d / "audio.wav")
    with av.open(str(d / "zero.avi"), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    full = vt.write_video(d / "full.mp4", 40).read_bytes()
    (d / "half.mp4").write_bytes(full[: len(full) // 2])
    # moov atom first: the header still promises 60 frames after the cut, the tail is gone.
    fast = vt.write_video(d / "fast.mp4", 60, noise_seed=1, container_options={"movflags": "faststart"}).read_bytes()
    (d / "clamped.mp4").write_bytes(fast[: len(fast) // 2])
    paths = {name: d / name for name in [*BAD_REASONS, "clamped.mp4"]}
    return paths


def _records(synthetic_root: Path, bad_files: dict[str, Path], n_good: int) -> tuple[list[VideoRecord], set[str]]:
    good = parse_path_label_list(synthetic_root / "train.txt", root=synthetic_root)[:n_good]
    bad = [VideoRecord(str(p), 0, name) for name, p in bad_files.items()]
    # Interleave, so bad videos sit between good ones as in a real list.
    mixed = [r for pair in zip(good, bad, strict=False) for r in pair] + good[len(bad) :] + bad[len(good) :]
    return mixed, {r.video_id for r in good}


def _dataset(records: list[VideoRecord], log: BadFileLog, *, train: bool, clips: int = 1) -> VideoDataset:
    tf = ClipTransform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), train=train)
    return VideoDataset(records, tf, SamplingConfig(num_frames=4, num_clips=clips), train=train, bad_file_log=log)


@pytest.mark.timeout(60)
def test_training_redraws_bad_videos_and_logs_each_with_its_reason(synthetic_root, bad_files, tmp_path) -> None:
    records, good_ids = _records(synthetic_root, bad_files, n_good=8)
    log = BadFileLog(tmp_path / "bad_videos.csv")
    ds = _dataset(records, log, train=True)
    assert len(ds) == len(records) == 15  # epoch length counts every listed video
    items = [ds[i] for i in range(len(ds))]
    assert len(items) == 15 and all(it["ok"] for it in items)
    assert all(it["video"].shape == (4, 3, 32, 32) for it in items)
    # Every undecodable video was replaced by a good one (or by the usable truncated one).
    assert {it["video_id"] for it in items} <= good_ids | {"clamped.mp4"}
    rows = log.rows()
    by_file = {Path(r["path"]).name: r for r in rows if r["action"].startswith("redrawn as")}
    for name, reason in BAD_REASONS.items():
        assert by_file[name]["reason"] == reason, (name, by_file.get(name))
        assert by_file[name]["split"] == "train"
    clamped = [r for r in rows if r["action"] == "clamped"]
    assert [Path(r["path"]).name for r in clamped] == ["clamped.mp4"]
    assert clamped[0]["reason"].startswith("truncated: got")
    # Same seed and epoch, same items: redraws are reproducible.
    again = _dataset(records, BadFileLog(tmp_path / "again.csv"), train=True)
    assert [again[i]["video_id"] for i in range(len(again))] == [it["video_id"] for it in items]


@pytest.mark.timeout(60)
def test_evaluation_counts_failed_videos_and_never_drops_a_good_one(synthetic_root, bad_files, tmp_path) -> None:
    records, good_ids = _records(synthetic_root, bad_files, n_good=5)
    log = BadFileLog(tmp_path / "bad_videos.csv")
    ds = _dataset(records, log, train=False, clips=2)
    assert len(ds) == 2 * len(records)
    loader = DataLoader(ds, batch_size=4, num_workers=2, worker_init_fn=worker_init)
    batches = list(loader)
    index = torch.cat([b["index"] for b in batches])
    view = torch.cat([b["view"] for b in batches])
    ok = torch.cat([b["ok"] for b in batches])
    ids = [v for b in batches for v in b["video_id"]]
    pairs = sorted(zip(index.tolist(), view.tolist(), strict=True))
    assert pairs == [(i, v) for i in range(len(records)) for v in range(2)]  # each (video, view) exactly once
    failed = {vid for vid, good in zip(ids, ok.tolist(), strict=True) if not good}
    assert failed == set(BAD_REASONS)  # the clamped file decodes; the others fail
    assert {vid for vid, good in zip(ids, ok.tolist(), strict=True) if good} == good_ids | {"clamped.mp4"}
    labels = torch.tensor([records[i].label for i in index.tolist()])
    probs = torch.rand(len(index), 4)
    result = aggregate_views(index, labels, ok, probs)
    assert result["num_videos"] == len(records) and result["num_failed"] == len(BAD_REASONS)
    assert result["label"].numel() == len(records) - len(BAD_REASONS)
    rows = log.rows()  # written from two worker processes
    failed_rows = [r for r in rows if r["action"].startswith("failed")]
    assert len(failed_rows) == 2 * len(BAD_REASONS)  # one per view
    assert {(Path(r["path"]).name, r["reason"]) for r in failed_rows} == set(BAD_REASONS.items())


def test_dataset_passes_decode_threads_and_refuses_an_empty_split(synthetic_root) -> None:
    records = parse_path_label_list(synthetic_root / "val.txt", root=synthetic_root)
    tf = ClipTransform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    ds = VideoDataset(records, tf, SamplingConfig(num_frames=4), train=False, decode_threads=1)
    assert ds.decode_threads == 1 and ds[0]["ok"]
    with pytest.raises(ValueError, match="has no videos"):
        VideoDataset([], tf, SamplingConfig(), train=False, split="val")


def test_training_gives_up_with_a_clear_error_when_everything_is_bad(bad_files, tmp_path) -> None:
    records = [VideoRecord(str(bad_files["garbage.mp4"]), 0, "g"), VideoRecord(str(bad_files["empty.mp4"]), 0, "e")]
    tf = ClipTransform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), train=True)
    ds = VideoDataset(records, tf, SamplingConfig(num_frames=4), train=True, max_redraws=3)
    with pytest.raises(RuntimeError, match=r"4 videos in a row failed.*alt check-data"):
        ds[0]


@pytest.mark.timeout(120)
def test_unreadable_videos_are_logged_with_the_os_message_not_as_missing(synthetic_root, tmp_path, unprivileged):
    """bad_videos.csv of a DataModule: dropped at the start (folder not enterable) or failed at decoding (no read)."""
    root = tmp_path / "data"
    (root / "v").mkdir(parents=True)
    (root / "locked").mkdir()
    good = sorted((synthetic_root / "videos").rglob("*.mp4"))[0]
    for rel in ("v/ok.mp4", "v/sealed.mp4", "locked/inside.mp4"):
        shutil.copy(good, root / rel)  # copies: chmod must not reach the shared file
    (root / "val.txt").write_text("v/ok.mp4 0\nv/sealed.mp4 1\nlocked/inside.mp4 0\nv/gone.mp4 1\n")
    (root / "classes.txt").write_text("a\nb\n")
    unprivileged.deny(root / "v" / "sealed.mp4", 0)  # exists, no read permission
    unprivileged.deny(root / "locked", 0o600)  # no execute: isfile() says False inside
    code = (
        "import json, sys\n"
        "from alt_lightning.datamodules import VideoListDataModule\n"
        "dm = VideoListDataModule(sys.argv[1], classes='classes.txt', num_frames=4, num_workers=0,\n"
        "                         bad_file_log=sys.argv[2])\n"
        "ds = dm.dataset('val')\n"
        "ok = {r.video_id: ds[i]['ok'] for i, r in enumerate(ds.records)}\n"
        "print(json.dumps({'ok': ok, 'rows': dm.bad_file_log().rows()}))\n"
    )
    res = unprivileged.run("-c", code, str(root), str(tmp_path / "bad_videos.csv"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ok"] == {"v/ok.mp4": True, "v/sealed.mp4": False}  # the sealed file is counted as failed, not dropped
    rows = [(Path(r["path"]).name, r["reason"], r["action"]) for r in out["rows"]]
    assert rows == [
        ("inside.mp4", "unreadable (Permission denied)", "dropped (missing)"),
        ("gone.mp4", "missing file", "dropped (missing)"),
        ("sealed.mp4", "unreadable (Permission denied)", "failed (view 0)"),
    ]
    # The warning says which: a mount/permission problem, not a download to redo.
    summary = "val: 2 of 4 videos are missing or unreadable (1 unreadable (Permission denied), 1 missing file)"
    assert summary in res.stderr


def test_missing_reason_tells_missing_from_unreadable(tmp_path, unprivileged) -> None:
    for name in ("closed", "unlisted"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "clip.mp4").write_bytes(b"x")
    unprivileged.deny(tmp_path / "closed", 0o600)  # no execute: the file cannot be reached
    unprivileged.deny(tmp_path / "unlisted", 0o300)  # no read: reachable, but a folder listing misses it
    paths = [tmp_path / "closed" / "clip.mp4", tmp_path / "unlisted" / "clip.mp4", tmp_path / "gone.mp4", tmp_path]
    code = "import json, sys\nfrom alt_lightning.data.parsers import missing_reason\n"
    code += "print(json.dumps([missing_reason(p) for p in sys.argv[1:]]))"
    res = unprivileged.run("-c", code, *map(str, paths))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [
        "unreadable (Permission denied)",
        "unreadable folder (Permission denied)",
        "missing file",
        "not a file",
    ]
    assert missing_reason(tmp_path / "gone.mp4") == "missing file"  # in-process too, as root or not


def test_training_item_randomness_follows_the_epoch_its_index_carries(synthetic_root, tmp_path) -> None:
    """In a worker the dataset's own epoch is that of its pickled copy; an EpochIndex brings the sampler's."""
    from alt_lightning.datamodules.samplers import EpochIndex

    records = parse_path_label_list(synthetic_root / "train.txt", root=synthetic_root)[:3]
    ds = _dataset(records, BadFileLog(tmp_path / "bad_videos.csv"), train=True)
    ds.set_epoch(5)
    at_5 = [ds[i]["video"] for i in range(3)]
    ds.set_epoch(0)
    carried = [ds[EpochIndex(i, 5)]["video"] for i in range(3)]
    plain = [ds[i]["video"] for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(at_5, carried, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(at_5, plain, strict=True))


class _Frames:
    """A transform that keeps the decoded uint8 frames (so a test can read which frames a clip holds)."""

    size = 0

    def __call__(self, frames: np.ndarray, rng=None, crop: int = 1) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # [T, 3, H, W]


class _CountingOpens:
    """Wraps the dataset's ``open_video``: counts opens and the frames each reader decoded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import alt_lightning.data.dataset as dataset_module

        self.opens: list[str] = []
        self.readers: list = []
        real = dataset_module.open_video

        def counting(path, *args, **kwargs):
            self.opens.append(str(path))  # tried, even when the file cannot be opened
            reader = real(path, *args, **kwargs)
            self.readers.append(reader)
            return reader

        monkeypatch.setattr(dataset_module, "open_video", counting)

    def frames_decoded(self) -> int:
        return sum(r.stats.frames_decoded for r in self.readers)

    def reset(self) -> None:
        self.opens.clear()
        self.readers.clear()


def _segment_views(num_frames: int, t: int, clips: int) -> list[list[int]]:
    """TSN test indices written out from the definition (segment s of t: [s*N//t, (s+1)*N//t), offset (2j+1)/2n)."""
    out = []
    for j in range(clips):
        clip = []
        for s in range(t):
            start, end = s * num_frames // t, (s + 1) * num_frames // t
            length = max(end - start, 1)
            clip.append(min(start + (2 * j + 1) * length // (2 * clips), num_frames - 1))
        out.append(clip)
    return out


@pytest.mark.timeout(120)
def test_one_pass_evaluation_reads_every_view_of_a_video_once_with_the_same_frames(
    tmp_path, vt, bad_files, monkeypatch
) -> None:
    """Views of a batch are decoded in one pass per video (one open): the same frames as one open per view."""
    long_gop = vt.write_video(tmp_path / "gop250.mp4", 300, gop=250)  # x264's default GOP: one keyframe per 250
    short_gop = vt.write_video(tmp_path / "gop10.mp4", 90, gop=10)
    avi = Path(__file__).parent / "media" / "xvid_packed_bframes.avi"  # decoded by counting, from the start
    paths = [long_gop, short_gop, avi, bad_files["clamped.mp4"], bad_files["garbage.mp4"]]
    records = [VideoRecord(str(p), k, p.name) for k, p in enumerate(paths)]
    counter = _CountingOpens(monkeypatch)
    ds = VideoDataset(records, _Frames(), SamplingConfig(num_frames=8, num_clips=3), train=False)
    assert len(ds) == 15

    one_pass = ds.__getitems__(list(range(15)))
    assert sorted(counter.opens) == sorted(str(p) for p in paths)  # each video opened once for its 3 views
    frames_one_pass = counter.frames_decoded()
    counter.reset()
    per_view = [ds[i] for i in range(15)]  # the previous path: one open per (video, view)
    assert len(counter.opens) == 15
    frames_per_view = counter.frames_decoded()

    for a, b in zip(one_pass, per_view, strict=True):
        assert (a["index"], a["view"], a["ok"], a["video_id"], a["label"]) == (
            b["index"],
            b["view"],
            b["ok"],
            b["video_id"],
            b["label"],
        )
        assert torch.equal(a["video"], b["video"])  # bit for bit
    assert [it["ok"] for it in one_pass] == [True] * 12 + [False] * 3  # the garbage file fails each view, counted
    # The frames are the TSN test views of the definition (read from the pixels, which encode the index mod 256).
    for v in range(3):
        shown = vt.read_indices(one_pass[v]["video"].permute(0, 2, 3, 1).numpy())
        assert shown == [i % 256 for i in _segment_views(300, 8, 3)[v]]
    # GOP 250: the three views each decode from frame 0 (or 250) up to their last frame; one pass decodes once.
    assert frames_one_pass < frames_per_view
    counter.reset()
    ds.__getitems__([0, 1, 2])
    long_once = counter.frames_decoded()
    counter.reset()
    for i in range(3):
        ds[i]
    assert long_once <= 300 < counter.frames_decoded()

    # Any order, any subset, repeats: the items follow the indices asked.
    order = [14, 4, 0, 3, 4, 9, 1]
    counter.reset()
    mixed = ds.__getitems__(order)
    assert len(counter.opens) == 4  # videos 4, 1, 0 and 3
    for i, item in zip(order, mixed, strict=True):
        assert (item["index"], item["view"]) == divmod(i, 3)
        assert torch.equal(item["video"], per_view[i]["video"])


def test_one_pass_views_with_three_crops_and_dense_sampling_equal_per_view(tmp_path, vt) -> None:
    """9 views (3 clips x 3 crops) and dense sampling through the real transform: one pass equals one open per view."""
    path = vt.write_video(tmp_path / "v.mp4", 120, gop=60, width=96, height=64)
    records = [VideoRecord(str(path), 0, "v")]
    tf = ClipTransform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), num_crops=3)
    for sampling in (SamplingConfig(4, num_clips=3, num_crops=3), SamplingConfig(4, "dense", 4, num_clips=3)):
        ds = VideoDataset(records, tf, sampling, train=False)
        batch = ds.__getitems__(list(range(len(ds))))
        assert len(batch) == sampling.num_views
        for i, item in enumerate(batch):
            assert item["view"] == i and torch.equal(item["video"], ds[i]["video"])
        videos = [it["video"] for it in batch]
        assert not any(torch.equal(a, b) for k, a in enumerate(videos) for b in videos[k + 1 :])  # views all differ


def test_training_items_are_unchanged_by_batch_reading(synthetic_root, tmp_path) -> None:
    from alt_lightning.datamodules.samplers import EpochIndex

    records = parse_path_label_list(synthetic_root / "train.txt", root=synthetic_root)[:4]
    ds = _dataset(records, BadFileLog(tmp_path / "bad.csv"), train=True)
    idx = [EpochIndex(i, 2) for i in (3, 1, 2)]
    for a, b in zip(ds.__getitems__(idx), [ds[i] for i in idx], strict=True):
        assert a["video_id"] == b["video_id"] and torch.equal(a["video"], b["video"])
